import type { SecretBox } from "../crypto/secret-box.js";
import type { TokenClient } from "../oauth/token-exchange.js";
import { clientSecretContext } from "../services/credential-service.js";
import type { CredentialDocument } from "../store/credentials.js";

/** The AAD that binds a connection's token (or other secret field) to the connection. */
export function connectionSecretContext(connectionId: string, field: string): string {
  return `connections/${connectionId}/${field}`;
}

/** Who the broker is at the credential's provider, with the client secret decrypted. */
export function tokenClientFor(credential: CredentialDocument, secretBox: SecretBox): TokenClient {
  return {
    tokenUrl: credential.token_url,
    clientId: credential.client_id,
    clientSecret: secretBox.decrypt(credential.client_secret, clientSecretContext(credential._id)),
    authMethod: credential.token_endpoint_auth_method,
    issuer: credential.issuer,
  };
}
