import type { SecretBox } from "../crypto/secret-box.js";
import type { TokenClient } from "../oauth/token-exchange.js";
import { clientSecretContext } from "../services/credential-service.js";
import type { CredentialDocument } from "../store/credentials.js";
import type { ProviderProfile } from "../providers/profile.js";

/** The AAD that binds a connection's token (or other secret field) to the connection. */
export function connectionSecretContext(connectionId: string, field: string): string {
  return `connections/${connectionId}/${field}`;
}

/**
 * Who the broker is at the credential's provider, with the client secret decrypted, and how that
 * provider's token endpoint wants to be spoken to (its profile).
 */
export function tokenClientFor(credential: CredentialDocument, profile: ProviderProfile, secretBox: SecretBox): TokenClient {
  return {
    tokenUrl: profile.tokenUrl,
    clientId: credential.client_id,
    clientSecret: secretBox.decrypt(credential.client_secret, clientSecretContext(credential._id)),
    authMethod: profile.token.authMethod,
    issuer: profile.issuer,
    bodyFormat: profile.token.bodyFormat,
    response: profile.token.response,
  };
}
