
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type ConnectionService,
  type CreateConnectionRequest,
  type CreateConnectionResponseSchema,
  RevocationOutcome,
} from "../../gen/oauth2broker/v1/connection_service_pb.js";
import type { ConnectionLifecycle, RevocationResult } from "../connections/connection-lifecycle.js";
import { connectionNotFound } from "../connections/connection-errors.js";
import type { TokenRefresher } from "../connections/token-refresher.js";
import { toConnectionEvent, toConnectionStatus } from "../events/connection-events.js";
import type { EventStore } from "../store/events.js";
import { fromConnectionStatus, toConnection, toProviderApi } from "./connection-views.js";
import { decodeListPosition, decodePageToken, encodeListPosition, pageOf, pageSize } from "./page-token.js";
import { type InitialiseDeps, initialiseOAuth2Connection } from "./initialise-connection.js";
import { requireOrganisation } from "../auth/caller.js";
import { releaseWorkSlots } from "../interceptors/rate-limit.js";
import { streamSignal } from "../interceptors/stream-limits.js";
import type { EventFeed } from "../events/event-feed.js";
import { DomainError, invalid, notFound } from "../errors.js";
import { normaliseScopes, } from "../oauth/authorize-url.js";
import { profileFor } from "../providers/profile.js";
import { catalogGrants } from "../providers/profile.js";
import {
  apiKeySecretOf,
  basicSecretOf,
  clientCredentialsRequestOf,
  credentialReferenceOf,
  importedTokensOf,
  jwtBearerRequestOf,
  replacementSecretOf,
  staticProviderOf,
} from "./connection-kinds.js";
import type { CredentialDocument } from "../store/credentials.js";

export interface ConnectionServiceDeps extends InitialiseDeps {
  events: EventStore;
  /** Every connection write (confirm, delete) goes through it. */
  lifecycle: ConnectionLifecycle;
  refresher: TokenRefresher;
  /** Published events, for WatchConnectionEvents (one shared poll per organisation). */
  eventFeed: EventFeed;
}

/** Every ConnectionService method but StartDeviceAuthorization (device-authorization-service.ts). */
export function connectionService(deps: ConnectionServiceDeps): Omit<ServiceImpl<typeof ConnectionService>, "startDeviceAuthorization"> {
  return {
    initialiseOAuth2Connection: (req, ctx) => initialiseOAuth2Connection(deps, req, ctx),

    async getConnection(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "connection");
      const connection = await deps.connections.findById(req.organisationId, req.id);
      if (connection === null) throw connectionNotFound();
      return { connection: toConnection(connection) };
    },

    async listConnections(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      const size = pageSize(req.pageSize);
      const after = req.pageToken === "" ? undefined : decodeListPosition(req.pageToken);
      const filter = {
        connectorId: req.connectorId === "" ? undefined : req.connectorId,
        credentialId: req.credentialId === "" ? undefined : req.credentialId,
        status: fromConnectionStatus(req.status),
      };
      const listed = await deps.connections.list(organisationId, filter, after, size + 1);
      const { shown, nextPageToken } = pageOf(listed, size, (last) => encodeListPosition(last.position));
      return { connections: shown.map(({ document }) => toConnection(document)), nextPageToken };
    },

    async getAccessToken(req, ctx) {
      const { organisationId, connectionId } = req;
      requireOrganisation(ctx, organisationId, "connection");
      const token = await deps.refresher.getAccessToken(organisationId, connectionId, {
        force: req.forceRefresh,
        // Waiting on another call's refresh is no work of this call's own: it gives its slots back.
        onSharedWait: () => releaseWorkSlots(ctx.values),
      });
      return {
        accessToken: token.accessToken,
        tokenType: token.tokenType,
        expireTime: token.expireTime ? timestampFromDate(token.expireTime) : undefined,
        metadata: token.metadata,
        apiBaseUrl: token.api?.base_urls[0]?.url ?? "",
        api: toProviderApi(token.api),
      };
    },

    createConnection: (req, ctx) => createConnection(deps, req, ctx),

    async replaceStaticConnection(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "connection");
      const secret = replacementSecretOf(req);
      return { connection: toConnection(await deps.lifecycle.replaceStatic(req.organisationId, req.id, secret)) };
    },

    async confirmConnection(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "connection");
      return { connection: toConnection(await deps.lifecycle.confirm(req.organisationId, req.connectionId, req.endUserId, req.confirmation)) };
    },

    async deleteConnection(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "connection");
      const result = await deps.lifecycle.delete(req.organisationId, req.id, { revoke: req.revoke, keepIfRevocationFails: req.keepIfRevocationFails });
      return { revocation: REVOCATION_OUTCOMES[result.outcome], revocationError: result.outcome === "failed" ? result.error : "" };
    },

    async listConnectionEvents(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      const connectionId = req.connectionId === "" ? undefined : req.connectionId;
      const size = pageSize(req.pageSize);
      const beforeId = req.pageToken === "" ? undefined : decodePageToken(req.pageToken);
      const { shown, nextPageToken } = pageOf(await deps.events.list(organisationId, connectionId, beforeId, size + 1), size);
      return { events: shown.map(toConnectionEvent), nextPageToken };
    },

    async countConnections(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      const { byStatus, failingCredentialIds } = await deps.connections.counts(organisationId, MAX_FAILING_COUNTED);
      const byCredential: Record<string, bigint> = {};
      for (const credentialId of failingCredentialIds) byCredential[credentialId] = (byCredential[credentialId] ?? 0n) + 1n;
      return {
        counts: [...byStatus].map(([status, count]) => ({ status: toConnectionStatus(status), count: BigInt(count) })),
        failingConnectionsByCredential: byCredential,
      };
    },

    async *watchConnectionEvents(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      for await (const event of deps.eventFeed.follow(organisationId, streamSignal(ctx))) yield { event: toConnectionEvent(event) };
    },
  };
}

/**
 * CreateConnection: checks the request for its kind before anything is read, then hands the
 * connection to the lifecycle, which obtains its first token (client credentials, JWT bearer), claims its
 * `import_id` (imports) or seals its secret (static kinds).
 */
async function createConnection(
  deps: ConnectionServiceDeps,
  req: CreateConnectionRequest,
  ctx: HandlerContext,
): Promise<MessageInitShape<typeof CreateConnectionResponseSchema>> {
    // organisation_id and connector_id were checked by the request rules (the contract's).
    const { organisationId, connectorId } = req;
    requireOrganisation(ctx, organisationId, "credential");
    const { lifecycle } = deps;
    switch (req.kind.case) {
      case "clientCredentials": {
        const input = req.kind.value;
        const reference = credentialReferenceOf(input.credential, "client_credentials.credential");
        const grantRequest = clientCredentialsRequestOf(input);
        const credential = await credentialOf(deps, organisationId, reference);
        // The provider's profile checks `connection_config` and knows its scope separator.
        const profile = profileFor(deps.providers, credential, input.connectionConfig);
        normaliseScopesFor(grantRequest.scopes, profile.authorize.scopeSeparator);
        const grants = catalogGrants(deps.providers, credential, "client_credentials");
        if (!grants.supported) throw new DomainError("precondition_failed", "the credential's provider does not support the client credentials grant");
        if (grantRequest.audience !== undefined && grants.audiences !== undefined && !grants.audiences.includes(grantRequest.audience)) {
          invalid("client_credentials.audience", "is not one of the provider's audiences (see GetProvider)");
        }
        const connection = await lifecycle.createWithClientCredentials({
          organisationId,
          connectorId,
          credential,
          grantRequest,
          connectionConfig: input.connectionConfig,
        });
        return { connection: toConnection(connection), created: true };
      }
      case "jwtBearer": {
        const input = req.kind.value;
        const reference = credentialReferenceOf(input.credential, "jwt_bearer.credential");
        const credential = await credentialOf(deps, organisationId, reference);
        const profile = profileFor(deps.providers, credential, input.connectionConfig);
        const grantRequest = jwtBearerRequestOf(input, profile.jwtBearer, profile.authorize.scopeSeparator);
        if (!catalogGrants(deps.providers, credential, "jwt_bearer").supported) {
          throw new DomainError("precondition_failed", "the credential's provider does not support the JWT bearer grant");
        }
        const connection = await lifecycle.createWithJwtBearer({ organisationId, connectorId, credential, grantRequest, connectionConfig: input.connectionConfig });
        return { connection: toConnection(connection), created: true };
      }
      case "imported": {
        const input = req.kind.value;
        const reference = credentialReferenceOf(input.credential, "imported.credential");
        const tokens = importedTokensOf(input);
        const credential = await credentialOf(deps, organisationId, reference);
        profileFor(deps.providers, credential, input.connectionConfig);
        const { connection, created } = await lifecycle.importConnection({
          organisationId,
          connectorId,
          credential,
          ...tokens,
          connectionConfig: input.connectionConfig,
        });
        return { connection: toConnection(connection), created };
      }
      case "apiKey": {
        const secret = apiKeySecretOf(req.kind.value, "api_key.api_key");
        const provider = staticProviderOf(req.kind.value.provider, "api_key.provider", deps.providers);
        return { connection: toConnection(await lifecycle.createStatic({ organisationId, connectorId, provider, secret })), created: true };
      }
      case "basic": {
        const secret = basicSecretOf(req.kind.value, "basic.");
        const provider = staticProviderOf(req.kind.value.provider, "basic.provider", deps.providers);
        return { connection: toConnection(await lifecycle.createStatic({ organisationId, connectorId, provider, secret })), created: true };
      }
      default:
        return invalid("kind", "is required (client_credentials or jwt_bearer or imported or api_key or basic)");
    }
}

/** Rule 1 (as InitialiseOAuth2Connection): another organisation's credential reads as a missing one. */
async function credentialOf(deps: ConnectionServiceDeps, organisationId: string, reference: { id: string; organisationId: string }): Promise<CredentialDocument> {
  const credential = reference.organisationId === organisationId ? await deps.credentials.findById(organisationId, reference.id) : null;
  if (credential === null) throw notFound("credential");
  return credential;
}

/** The scopes once more, now that the provider's separator is known (Slack's comma). */
function normaliseScopesFor(scopes: string[], separator: string): void {
  normaliseScopes(scopes, undefined, separator, "client_credentials.scopes");
}

const REVOCATION_OUTCOMES: Record<RevocationResult["outcome"], RevocationOutcome> = {
  not_requested: RevocationOutcome.UNSPECIFIED,
  revoked: RevocationOutcome.REVOKED,
  failed: RevocationOutcome.FAILED,
  not_supported: RevocationOutcome.NOT_SUPPORTED,
};

/** CountConnections reads at most this many failing connections to group them by credential. */
const MAX_FAILING_COUNTED = 10_000;
