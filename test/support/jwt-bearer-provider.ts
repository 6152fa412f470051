import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import * as jose from "jose";
import { recordSecrets } from "./run-record.js";

/** One assertion the token endpoint received, decoded after its signature was verified. */
export interface ReceivedAssertion {
  provider: "google" | "salesforce";
  header: jose.ProtectedHeaderParameters;
  claims: jose.JWTPayload;
  /** The request's parameter names, in order. */
  parameters: string[];
  authorization: string | undefined;
}

/**
 * Token endpoints on loopback that take the JWT bearer grant (RFC 7523 §2.1) and check the
 * assertion as each provider's docs say, verifying its signature against the keys the broker
 * publishes at the credential's JWKS URL (`jwksUrl`):
 * - `/google/token`, as https://developers.google.com/identity/protocols/oauth2/service-account:
 *   `grant_type` and `assertion` only; RS256; `iss` the service account's client_email; `scope`
 *   a space-separated claim; `aud` the token URI; `exp` at most one hour after `iat`; `sub`, when
 *   given, a user the account may act for (domain-wide delegation). Answers `access_token`,
 *   `expires_in`, `token_type`; refuses with 400 `invalid_grant`.
 * - `/salesforce/services/oauth2/token`, as Salesforce's "OAuth 2.0 JWT Bearer Flow for
 *   Server-to-Server Integration": RS256; `iss` the consumer key; `sub` an approved username;
 *   `aud` the login host (this server's origin); `exp` within 3 minutes; no scopes. Answers
 *   `access_token`, `scope`, `instance_url`, `id`, `token_type` (no `expires_in`).
 */
export class JwtBearerProvider {
  readonly received: ReceivedAssertion[] = [];
  /** Refusals, by reason (what the endpoint found wrong). */
  readonly refusals: string[] = [];
  /** Where the broker publishes the signing credential's public keys. */
  jwksUrl = "";
  google = { clientEmail: "", delegatedUsers: [] as string[], expiresIn: 3599 };
  salesforce = { consumerKey: "", usernames: [] as string[] };
  #server: Server;

  private constructor() {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        res.writeHead(500).end(String(error));
      });
    });
  }

  static async start(): Promise<JwtBearerProvider> {
    const provider = new JwtBearerProvider();
    await new Promise<void>((resolve) => provider.#server.listen(0, "127.0.0.1", resolve));
    return provider;
  }

  get origin(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  get googleTokenUrl(): string {
    return `${this.origin}/google/token`;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const provider = req.url === "/google/token" ? "google" : req.url === "/salesforce/services/oauth2/token" ? "salesforce" : undefined;
    if (provider === undefined || req.method !== "POST") return void res.writeHead(404).end();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
    const refuse = (reason: string, description: string) => {
      this.refusals.push(reason);
      res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: "invalid_grant", error_description: description }));
    };
    if (!req.headers["content-type"]?.startsWith("application/x-www-form-urlencoded")) return refuse("content_type", "bad request");
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") return refuse("grant_type", "unsupported grant type");
    const assertion = form.get("assertion");
    if (assertion === null) return refuse("no_assertion", "missing assertion");
    recordSecrets(assertion);
    const keys = jose.createLocalJWKSet((await (await fetch(this.jwksUrl)).json()) as jose.JSONWebKeySet);
    let verified: jose.JWTVerifyResult;
    try {
      verified = await jose.jwtVerify(assertion, keys, { algorithms: ["RS256"] });
    } catch {
      return refuse("signature", "Invalid JWT Signature.");
    }
    const { payload: claims, protectedHeader: header } = verified;
    this.received.push({ provider, header, claims, parameters: [...form.keys()], authorization: req.headers.authorization });
    const now = Math.floor(Date.now() / 1000);
    const iat = claims.iat ?? now;
    if (claims.exp === undefined || claims.exp <= now) return refuse("expired", "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe");
    const accessToken = `${provider}-at-${randomBytes(12).toString("hex")}`;
    recordSecrets(accessToken);
    const answer = (body: Record<string, unknown>): void => void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (provider === "google") {
      const { clientEmail, delegatedUsers, expiresIn } = this.google;
      // Google: exactly grant_type and assertion; the service account's key is its only proof.
      if ([...form.keys()].sort().join() !== "assertion,grant_type" || req.headers.authorization !== undefined) return refuse("parameters", "bad request");
      if (header.kid === undefined) return refuse("kid", "Invalid JWT Signature.");
      if (claims.iss !== clientEmail) return refuse("iss", "Invalid issuer");
      if (claims.aud !== this.googleTokenUrl) return refuse("aud", "Invalid JWT: aud");
      if (claims.exp - iat > 3600 || iat > now + 60) return refuse("lifetime", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe");
      if (typeof claims.scope !== "string" || claims.scope === "") return refuse("scope", "Invalid JWT: scope");
      if (claims.sub !== undefined && !delegatedUsers.includes(String(claims.sub))) return refuse("sub", "Invalid email or User ID");
      return answer({ access_token: accessToken, expires_in: expiresIn, token_type: "Bearer" });
    }
    const { consumerKey, usernames } = this.salesforce;
    if (claims.iss !== consumerKey) return refuse("iss", "invalid client credentials");
    if (claims.aud !== this.origin) return refuse("aud", "audience is invalid");
    if (claims.exp - now > 180) return refuse("lifetime", "expiration time is too far in the future");
    if (claims.scope !== undefined || form.has("scope")) return refuse("scope", "scopes come from the connected app");
    if (typeof claims.sub !== "string" || !usernames.includes(claims.sub)) return refuse("sub", "user hasn't approved this consumer");
    return answer({ access_token: accessToken, scope: "api", instance_url: "https://acme.my.salesforce.example", id: `${this.origin}/id/00D/005`, token_type: "Bearer" });
  }
}
