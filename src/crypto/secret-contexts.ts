// The additional authenticated data (AAD) bound into every stored ciphertext, one function per kind
// of secret. Changing a string makes every secret stored under it unreadable: each is pinned in
// test/crypto/secret-contexts.test.ts.

/** Binds a client secret's ciphertext to its credential. */
export function clientSecretContext(credentialId: string): string {
  return `credentials/${credentialId}/client_secret`;
}

/** Binds a credential's previous client secret (kept while a rotation is under way) to it. */
export function previousClientSecretContext(credentialId: string): string {
  return `credentials/${credentialId}/previous_client_secret`;
}

/** Binds a credential's private signing key to the credential and the key's `kid`. */
export function privateKeyContext(credentialId: string, kid: string): string {
  return `credentials/${credentialId}/private_keys/${kid}`;
}

/** Binds a connection's token (or other secret field) to the connection. */
export function connectionSecretContext(connectionId: string, field: string): string {
  return `connections/${connectionId}/${field}`;
}

/** Binds an organisation's webhook secrets to it. */
export function webhookSecretContext(organisationId: string): string {
  return `organisations/${organisationId}/webhook_secret`;
}

/** Binds a stored PKCE verifier to its attempt. */
export function codeVerifierContext(stateHash: string): string {
  return `oauth_states/${stateHash}/code_verifier`;
}
