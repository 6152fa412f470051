import type { AddressInfo } from "node:net";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import Provider from "oidc-provider";

export interface DemoOidcProvider {
  issuer: string;
  close(): Promise<void>;
}

/**
 * A local OpenID provider to try the broker against, and the one the end-to-end test uses:
 * a real OpenID provider (panva/oidc-provider, the certified implementation) on loopback, with
 * its development login and consent pages, one confidential client whose redirect URI is the
 * broker's callback, short-lived access tokens, and rotating refresh tokens for offline_access.
 */
export async function startOidcProvider(
  client: {
    clientId: string;
    clientSecret: string;
    redirectUri: string;
    /** `private_key_jwt` with `jwksUri`: the client proves itself with keys published there. */
    tokenEndpointAuthMethod?: "client_secret_basic" | "private_key_jwt";
    jwksUri?: string;
  },
  { port = 0, accessTokenTtl = 300 }: { port?: number; accessTokenTtl?: number } = {},
): Promise<DemoOidcProvider> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: client.clientId,
        redirect_uris: [client.redirectUri],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        ...(client.tokenEndpointAuthMethod === "private_key_jwt"
          ? { token_endpoint_auth_method: "private_key_jwt", jwks_uri: client.jwksUri }
          : { client_secret: client.clientSecret, token_endpoint_auth_method: "client_secret_basic" }),
      },
    ],
    pkce: { required: () => true },
    scopes: ["openid", "offline_access", "email"],
    claims: { openid: ["sub"], email: ["email", "email_verified"] },
    findAccount: (_ctx: unknown, id: string) => ({
      accountId: id,
      claims: () => ({ sub: id, email: `${id}@example.com`, email_verified: true }),
    }),
    // Every refresh returns a new refresh token and retires the old one (RFC 9700 §4.14.2).
    rotateRefreshToken: () => true,
    ttl: { AccessToken: accessTokenTtl, AuthorizationCode: 60, RefreshToken: 3600, IdToken: 300, Session: 600, Interaction: 600, Grant: 600 },
    cookies: { keys: ["test-cookie-key-0123456789abcdef"] },
    // Revocation (RFC 7009) for DeleteConnection with `revoke`; introspection (RFC 7662) so tests
    // can ask the provider whether a token is still active.
    features: { devInteractions: { enabled: true }, revocation: { enabled: true }, introspection: { enabled: true } },
    // oidc-provider refuses to fetch from loopback addresses (its SSRF guard, a dispatcher it
    // passes here); this provider and the broker whose JWKS it fetches both live on loopback.
    fetch: (url: string, { dispatcher: _loopbackGuard, ...options }: RequestInit & { dispatcher?: unknown }) => globalThis.fetch(url, options),
  } as never);
  // oidc-provider refuses plain-http cookies unless told it sits behind a TLS proxy.
  provider.proxy = true;
  server.on("request", provider.callback());
  return {
    issuer,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// `npm run demo-provider`: serve it on http://127.0.0.1:9090 for the broker at BROKER_PUBLIC_URL.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const publicUrl = (process.env.BROKER_PUBLIC_URL ?? "http://localhost:8080").replace(/\/+$/, "");
  const demo = await startOidcProvider(
    { clientId: "demo-client", clientSecret: "demo-secret", redirectUri: `${publicUrl}/oauth2/callback` },
    { port: Number(process.env.DEMO_PROVIDER_PORT ?? "9090") },
  );
  console.log(`demo OpenID provider at ${demo.issuer}: client_id demo-client, client_secret demo-secret`);
  console.log(`redirect URI registered: ${publicUrl}/oauth2/callback; sign in with any name and password`);
  process.on("SIGINT", () => void demo.close().then(() => process.exit(0)));
  process.on("SIGTERM", () => void demo.close().then(() => process.exit(0)));
}
