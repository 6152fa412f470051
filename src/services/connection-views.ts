import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  ApiTokenLocation,
  type Connection,
  ConnectionKind,
  ConnectionSchema,
  ConnectionStatus,
  type ProviderApi,
  ProviderApiSchema,
} from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { toConnectionStatus } from "../events/connection-events.js";
import type { ConnectionApi } from "../providers/api.js";
import type { ConnectionDocument, ConnectionKindName, ConnectionStatus as StoredStatus } from "../store/connections.js";

export function fromConnectionStatus(status: ConnectionStatus): Exclude<StoredStatus, "DELETED"> | undefined {
  switch (status) {
    case ConnectionStatus.ACTIVE:
      return "ACTIVE";
    case ConnectionStatus.REFRESH_FAILED:
      return "REFRESH_FAILED";
    case ConnectionStatus.NEEDS_REAUTHORIZATION:
      return "NEEDS_REAUTHORIZATION";
    case ConnectionStatus.PENDING:
      return "PENDING";
    default:
      return undefined;
  }
}

/** The API view of a connection: metadata only, never a token. */
export function toConnection(document: ConnectionDocument): Connection {
  return create(ConnectionSchema, {
    id: document._id,
    organisationId: document.organisation_id,
    connectorId: document.connector_id,
    credentialId: document.credential_id,
    status: toConnectionStatus(document.status),
    statusReason: document.status_reason ?? "",
    scopes: document.scopes,
    tokenType: document.token_type,
    accessTokenExpireTime: document.expire_time ? timestampFromDate(document.expire_time) : undefined,
    hasRefreshToken: document.refresh_token !== undefined,
    createTime: timestampFromDate(document.create_time),
    updateTime: timestampFromDate(document.update_time),
    metadata: document.metadata ?? {},
    externalAccount:
      document.external_account === undefined
        ? undefined
        : { id: document.external_account.id, email: document.external_account.email ?? "", name: document.external_account.name ?? "" },
    kind: CONNECTION_KINDS[document.kind ?? "authorization_code"],
    apiBaseUrl: document.api?.base_urls[0]?.url ?? "",
    api: toProviderApi(document.api),
  });
}

/** The API view of where a connection's provider API lives (for Connection and GetAccessToken). */
export function toProviderApi(api: ConnectionApi | undefined): ProviderApi | undefined {
  if (api === undefined) return undefined;
  return create(ProviderApiSchema, {
    baseUrls: api.base_urls.map((base) => ({ name: base.name, url: base.url, description: base.description ?? "" })),
    tokenPlacement: {
      location: api.token.in === "query" ? ApiTokenLocation.QUERY : ApiTokenLocation.HEADER,
      name: api.token.name,
      scheme: api.token.scheme,
    },
    headers: api.headers ?? {},
  });
}

const CONNECTION_KINDS: Record<ConnectionKindName, ConnectionKind> = {
  authorization_code: ConnectionKind.AUTHORIZATION_CODE,
  client_credentials: ConnectionKind.CLIENT_CREDENTIALS,
  imported: ConnectionKind.IMPORTED,
  device_code: ConnectionKind.DEVICE_CODE,
  jwt_bearer: ConnectionKind.JWT_BEARER,
  api_key: ConnectionKind.API_KEY,
  basic: ConnectionKind.BASIC,
};
