import type { SecretBox } from "../crypto/secret-box.js";
import type { TokenClient } from "../oauth/token-exchange.js";
import type { ConnectionDocument, GrantRequestDocument } from "../store/connections.js";
import { type JwtBearerAssertion, JwtBearerAssertionError } from "../oauth/jwt-bearer.js";
import type { CredentialDocument, CredentialStore } from "../store/credentials.js";
import type { ProviderProfile } from "../providers/profile.js";
import type { ConnectionApi } from "../providers/api.js";
import type { SigningKey } from "../oauth/client-authentication.js";
import { clientSecretContext, previousClientSecretContext, privateKeyContext } from "../crypto/secret-contexts.js";

/** What decrypting a credential's secrets needs, and where a rotation's secret use is recorded. */
export interface CredentialSecretDeps {
  secretBox: SecretBox;
  credentials: Pick<CredentialStore, "recordClientSecretUse">;
}

/**
 * Who the broker is at the credential's provider, with the client secrets (both, during a
 * rotation) and the newest signing key decrypted, and how that provider's token endpoint wants to
 * be spoken to (its profile).
 */
export function tokenClientFor(credential: CredentialDocument, profile: ProviderProfile, deps: CredentialSecretDeps): TokenClient {
  const { secretBox } = deps;
  const client: TokenClient = {
    tokenUrl: profile.tokenUrl,
    clientId: credential.client_id,
    clientSecret: credential.client_secret === "" ? "" : secretBox.decrypt(credential.client_secret, clientSecretContext(credential._id)),
    authMethod: profile.token.authMethod,
    issuer: profile.issuer,
    bodyFormat: profile.token.bodyFormat,
    response: profile.token.response,
    basicEncoding: profile.token.basicEncoding,
    clientIdParam: profile.token.clientIdParam,
    clientSecretParam: profile.token.clientSecretParam,
    extraParams: profile.token.extraParams,
  };
  if (client.authMethod === "private_key_jwt") {
    client.signingKey = credentialSigningKey(credential, secretBox);
    client.assertionAudience = profile.token.clientAssertion.audience;
  } else if (credential.previous_client_secret !== undefined) {
    client.previousClientSecret = secretBox.decrypt(credential.previous_client_secret, previousClientSecretContext(credential._id));
    // Written only when it changes, so a rotation costs no write per token request.
    client.recordSecretUse = async (slot) => {
      if (slot === "current" && credential.client_secret_last_used === "current") return;
      await deps.credentials.recordClientSecretUse(credential._id, slot, new Date());
    };
  }
  return client;
}

/**
 * The credential's newest signing key, decrypted, or undefined when it has none: what signs its
 * client assertions (`private_key_jwt`) and, for the JWT bearer grant, its assertions (see
 * `signJwtWithCredentialKey`).
 */
export function credentialSigningKey(credential: CredentialDocument, secretBox: SecretBox): SigningKey | undefined {
  const newest = credential.keys?.at(-1);
  if (newest === undefined) return undefined;
  const privateJwk = JSON.parse(secretBox.decrypt(newest.private_key, privateKeyContext(credential._id, newest.kid))) as SigningKey["privateJwk"];
  return { kid: newest.kid, alg: newest.alg, privateJwk };
}

/**
 * What a JWT bearer assertion for this connection's grant request is made of (RFC 7523 §2.1):
 * the credential's newest key, decrypted, and its service account; the provider's rules (its
 * profile's). Throws JwtBearerAssertionError when the credential has no key, or no service
 * account where the provider's `iss` is one.
 */
export function jwtBearerAssertionFor(
  credential: CredentialDocument,
  profile: ProviderProfile,
  request: GrantRequestDocument,
  tokenUrl: string,
  secretBox: SecretBox,
): JwtBearerAssertion {
  const key = credentialSigningKey(credential, secretBox);
  if (key === undefined) throw new JwtBearerAssertionError("the credential has no signing key");
  const serviceAccountEmail = credential.keys?.at(-1)?.service_account_email;
  if (profile.jwtBearer.issuer === "service_account_email" && serviceAccountEmail === undefined) {
    throw new JwtBearerAssertionError("the credential's newest key is not a service account key (no client_email)");
  }
  return {
    rules: profile.jwtBearer,
    key,
    clientId: credential.client_id,
    serviceAccountEmail,
    tokenUrl,
    subject: request.subject,
    scope: request.scopes.length === 0 ? undefined : request.scopes.join(profile.authorize.scopeSeparator),
    audience: request.audience,
  };
}

/** The endpoints a connection records: where its tokens were obtained, and may be sent. */
export interface ConnectionEndpoints {
  token_url: string;
  revocation_url?: string;
}

/**
 * The endpoints to record on a connection whose tokens come from the credential as it is now: its
 * profile's, with the catalog's templates filled from the connection's values.
 */
export function endpointsOf(profile: ProviderProfile): ConnectionEndpoints {
  return profile.revocationUrl === undefined
    ? { token_url: profile.tokenUrl }
    : { token_url: profile.tokenUrl, revocation_url: profile.revocationUrl };
}

/**
 * The API base to record on a connection when its credential sets its own (`api_base_url`): it
 * replaces the catalog's, and like `token_url` stays as recorded until a reconnect or a move.
 */
export function credentialApi(credential: CredentialDocument, provider: string | undefined): ConnectionApi | undefined {
  if (credential.api_base_url === undefined) return undefined;
  const api: ConnectionApi = {
    base_urls: [{ name: "credential", url: credential.api_base_url }],
    token: credential.api_token_placement ?? { in: "header", name: "Authorization", scheme: "Bearer" },
    source: "credential",
  };
  if (provider !== undefined) api.provider = provider;
  return api;
}

/**
 * Where one of a connection's tokens may be sent (its refresh endpoint, `token_url`, or its
 * `revocation_url`) and the client to send it as, or why it may not (security issue 11, item 1):
 * - the token goes only to the connection's own endpoint, the one in force when it was obtained;
 * - the client secret goes with it only when that is also the credential's endpoint now. An
 *   endpoint of a credential changes only together with its secret, so the stored secret was
 *   stored for the credential's current endpoints and for no others.
 * `no_endpoint`: the connection has no such endpoint. `endpoint_changed`: the credential's
 * endpoint differs (the connection must be reconnected, or moved by an admin).
 */
export function connectionTokenClient(
  connection: ConnectionDocument,
  credential: CredentialDocument,
  profile: ProviderProfile,
  endpoint: "token_url" | "revocation_url",
  deps: CredentialSecretDeps,
): { client: TokenClient; url: string; adopted: ConnectionEndpoints | undefined } | "no_endpoint" | "endpoint_changed" {
  const current = endpointsOf(profile);
  const own = recordedEndpoints(connection, credential, current);
  if (own === undefined) return "endpoint_changed";
  const url = own[endpoint];
  if (url === undefined) return "no_endpoint";
  if (url !== current[endpoint]) return "endpoint_changed";
  const adopted = connection.token_url === undefined ? own : undefined;
  return { client: { ...tokenClientFor(credential, profile, deps), tokenUrl: own.token_url }, url, adopted };
}

/**
 * The connection's recorded endpoints. A connection made before they were recorded gets its
 * credential's only if the credential has not changed since the connection last obtained tokens
 * (then those were the endpoints in force); otherwise nothing is known, and nothing is sent.
 */
function recordedEndpoints(
  connection: ConnectionDocument,
  credential: CredentialDocument,
  current: ConnectionEndpoints,
): ConnectionEndpoints | undefined {
  if (connection.token_url !== undefined) return { token_url: connection.token_url, revocation_url: connection.revocation_url };
  const obtained = connection.refresh_attempt_time ?? connection.create_time;
  return credential.update_time < obtained ? current : undefined;
}
