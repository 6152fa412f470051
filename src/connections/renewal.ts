import type { SecretBox } from "../crypto/secret-box.js";
import { connectionSecretContext } from "../crypto/secret-contexts.js";
import { refreshAccessToken, requestClientCredentials, type TokenClient } from "../oauth/token-exchange.js";
import type { TokenSet } from "../oauth/token-response.js";
import type { ConnectionDocument, ConnectionKindName, GrantRequestDocument } from "../store/connections.js";
import type { CredentialDocument } from "../store/credentials.js";
import { requestJwtBearer } from "../oauth/jwt-bearer.js";
import type { ProviderProfile } from "../providers/profile.js";
import { jwtBearerAssertionFor } from "./secrets.js";

/**
 * How a connection of each kind gets a new access token:
 * - `refresh_token`: with its refresh token (RFC 6749 §6); without one it must be reauthorized;
 * - `grant_again`: by repeating the grant it was made with, which needs nothing but the credential
 *   (client credentials, RFC 6749 §4.4; the JWT bearer grant, RFC 7523 §2.1, joins here);
 * - `static`: never: the stored secret is the answer (API keys, Basic).
 */
export type Renewal = "refresh_token" | "grant_again" | "static";

const RENEWALS: Record<ConnectionKindName, Renewal> = {
  authorization_code: "refresh_token",
  imported: "refresh_token",
  device_code: "refresh_token",
  client_credentials: "grant_again",
  jwt_bearer: "grant_again",
  api_key: "static",
  basic: "static",
};

export function renewalOf(connection: Pick<ConnectionDocument, "kind">): Renewal {
  return RENEWALS[connection.kind ?? "authorization_code"];
}

/** The client credentials request a connection's stored grant request stands for. */
export function clientCredentialsRequestOf(request: GrantRequestDocument, scopeSeparator: string) {
  return {
    scope: request.scopes.length === 0 ? undefined : request.scopes.join(scopeSeparator),
    resource: request.resource ?? [],
    audience: request.audience,
  };
}

/**
 * The kind-specific step of a refresh: the token request that gets a new access token for this
 * connection, sent as `client`. Throws ProviderCallError or JwtBearerAssertionError (the
 * refresher records either), or Error for a kind that is never renewed (a bug: the refresher checks first).
 */
export function obtainAgain(
  connection: ConnectionDocument,
  client: TokenClient,
  profile: ProviderProfile,
  credential: CredentialDocument,
  secretBox: SecretBox,
  fetchImpl: typeof fetch,
): Promise<TokenSet> {
  switch (connection.kind ?? "authorization_code") {
    case "client_credentials":
      return requestClientCredentials(client, clientCredentialsRequestOf(connection.grant_request ?? { scopes: [] }, profile.authorize.scopeSeparator), fetchImpl);
    case "jwt_bearer": {
      // A new assertion, signed now with the credential's newest key, to the connection's own token endpoint.
      const assertion = jwtBearerAssertionFor(credential, profile, connection.grant_request ?? { scopes: [] }, client.tokenUrl, secretBox);
      return requestJwtBearer(assertion, client.response, fetchImpl);
    }
    case "authorization_code":
    case "imported":
    case "device_code": {
      if (connection.refresh_token === undefined) throw new Error("obtainAgain: the connection has no refresh token");
      const refreshToken = secretBox.decrypt(connection.refresh_token, connectionSecretContext(connection._id, "refresh_token"));
      return refreshAccessToken(client, refreshToken, fetchImpl);
    }
    default:
      throw new Error(`obtainAgain: a ${connection.kind} connection is not renewed`);
  }
}
