import { timestampDate } from "@bufbuild/protobuf/wkt";
import type {
  ClientCredentialsConnection,
  ImportedConnection,
  JwtBearerGrant,
  ReplaceStaticConnectionRequest,
  StaticApiKey,
  StaticBasic,
} from "../../gen/oauth2broker/v1/connection_service_pb.js";
import type { StaticSecret } from "../connections/connection-lifecycle.js";
import { invalid } from "../errors.js";
import { normaliseScopes } from "../oauth/authorize-url.js";
import type { JwtBearerRules } from "../oauth/jwt-bearer.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import type { ExternalAccountDocument, GrantRequestDocument } from "../store/connections.js";
import { optionalText, requireText } from "../validation.js";

// CreateConnection's per-kind input, checked before anything is read or written. Each function
// throws InvalidInputError naming the field (`client_credentials.scopes[1]`); none echoes a secret.

const MAX_RESOURCES = 10;
const MAX_TOKEN_LENGTH = 16_384;
const MAX_METADATA_KEYS = 50;
const TOKEN_TYPE = /^[A-Za-z0-9_-]{1,64}$/;
const METADATA_KEY = /^[a-z0-9_]{1,64}$/;

/** A credential reference, required here (its fields are checked by the request rules). */
export function credentialReferenceOf(reference: { id: string; organisationId: string } | undefined, field: string) {
  if (reference === undefined) invalid(field, "is required");
  return { id: reference.id, organisationId: reference.organisationId };
}

/** Scopes, resources and audience of a client credentials connection (the separator is checked once the provider is known). */
export function clientCredentialsRequestOf(input: ClientCredentialsConnection): GrantRequestDocument {
  const scopes = normaliseScopes(input.scopes, undefined, " ", "client_credentials.scopes");
  if (input.resource.length > MAX_RESOURCES) invalid("client_credentials.resource", `must have at most ${MAX_RESOURCES} entries`);
  input.resource.forEach((resource, index) => {
    const field = `client_credentials.resource[${index}]`;
    requireText(resource, field, 2048);
    // RFC 8707 §2: an absolute URI without a fragment.
    if (URL.parse(resource) === null) invalid(field, "must be an absolute URI");
    if (resource.includes("#")) invalid(field, "must not contain a fragment");
  });
  const request: GrantRequestDocument = { scopes };
  if (input.resource.length > 0) request.resource = [...new Set(input.resource)];
  if (input.audience !== "") request.audience = optionalText(input.audience, "client_credentials.audience", 512);
  return request;
}

/**
 * A JWT bearer connection's subject, scopes and audience (RFC 7523 §3). What the provider
 * requires of them (a subject; scopes from the app, not the assertion) is checked against its
 * rules, from its profile.
 */
export function jwtBearerRequestOf(input: JwtBearerGrant, rules: JwtBearerRules, separator: string): GrantRequestDocument {
  const scopes = normaliseScopes(input.scopes, undefined, separator, "jwt_bearer.scopes");
  if (rules.scope === "none" && scopes.length > 0) invalid("jwt_bearer.scopes", "must be empty: the provider takes the scopes from the app, not the assertion");
  const request: GrantRequestDocument = { scopes };
  if (input.subject !== "") request.subject = optionalText(input.subject, "jwt_bearer.subject", 256);
  else if (rules.subject === "required") invalid("jwt_bearer.subject", "is required by the provider");
  if (input.audience !== "") {
    request.audience = optionalText(input.audience, "jwt_bearer.audience", 512);
    if (URL.parse(request.audience) === null) invalid("jwt_bearer.audience", "must be an absolute URI");
  }
  return request;
}

/** The imported tokens and facts, checked. */
export function importedTokensOf(input: ImportedConnection) {
  const importId = requireText(input.importId, "imported.import_id", 256);
  const accessToken = requireText(input.accessToken, "imported.access_token", MAX_TOKEN_LENGTH);
  const refreshToken = input.refreshToken === "" ? undefined : optionalText(input.refreshToken, "imported.refresh_token", MAX_TOKEN_LENGTH);
  if (input.checkRefresh && refreshToken === undefined) invalid("imported.refresh_token", 'is required with "check_refresh"');
  if (input.tokenType !== "" && !TOKEN_TYPE.test(input.tokenType)) invalid("imported.token_type", "must be 1 to 64 characters of A-Z a-z 0-9 _ -");
  const scopes = normaliseScopes(input.scopes, undefined, " ", "imported.scopes");
  let account: ExternalAccountDocument | undefined;
  if (input.externalAccount !== undefined) {
    account = { id: requireText(input.externalAccount.id, "imported.external_account.id", 256) };
    if (input.externalAccount.email !== "") account.email = optionalText(input.externalAccount.email, "imported.external_account.email", 256);
    if (input.externalAccount.name !== "") account.name = optionalText(input.externalAccount.name, "imported.external_account.name", 256);
  }
  const keys = Object.keys(input.metadata);
  if (keys.length > MAX_METADATA_KEYS) invalid("imported.metadata", `must have at most ${MAX_METADATA_KEYS} keys`);
  for (const key of keys) {
    if (!METADATA_KEY.test(key)) invalid(`imported.metadata.${key.slice(0, 64)}`, "must be a key of 1 to 64 characters of a-z 0-9 _");
    optionalText(input.metadata[key]!, `imported.metadata.${key}`, 512);
  }
  return {
    importId,
    accessToken,
    refreshToken,
    expireTime: input.expireTime === undefined ? undefined : timestampDate(input.expireTime),
    tokenType: input.tokenType === "" ? "bearer" : input.tokenType.toLowerCase(),
    scopes,
    account,
    metadata: { ...input.metadata },
    checkRefresh: input.checkRefresh,
  };
}

/** A static connection's catalog provider: empty, or an ID in the catalog. */
export function staticProviderOf(provider: string, field: string, catalog: ProviderCatalog): string | undefined {
  if (provider === "") return undefined;
  if (provider.length > 128 || catalog.get(provider) === undefined) invalid(field, "is not in the provider catalog");
  return provider;
}

export function apiKeySecretOf(input: Pick<StaticApiKey, "apiKey">, field: string): StaticSecret {
  return { kind: "api_key", value: requireText(input.apiKey, field, 4096) };
}

/** RFC 7617 §2: `base64(user-id ":" password)`, UTF-8, and a user-id holds no colon. */
export function basicSecretOf(input: Pick<StaticBasic, "username" | "password">, prefix: string): StaticSecret {
  const username = requireText(input.username, `${prefix}username`, 256);
  if (username.includes(":")) invalid(`${prefix}username`, "must not contain a colon (RFC 7617 §2)");
  const password = requireText(input.password, `${prefix}password`, 4096);
  return { kind: "basic", value: Buffer.from(`${username}:${password}`, "utf8").toString("base64") };
}

/** ReplaceStaticConnection's secret: an API key, or a username and password, not both. */
export function replacementSecretOf(req: ReplaceStaticConnectionRequest): StaticSecret {
  if (req.apiKey !== "" && (req.username !== "" || req.password !== "")) invalid("api_key", 'must not be given with "username" or "password"');
  if (req.apiKey !== "") return apiKeySecretOf(req, "api_key");
  if (req.username === "" && req.password === "") invalid("api_key", 'is required (or "username" and "password")');
  return basicSecretOf(req, "");
}
