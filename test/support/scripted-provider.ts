import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as jose from "jose";
import { recordSecrets } from "./run-record.js";

/** What the token endpoint does next. */
export type TokenBehaviour =
  | { kind: "json"; body: Record<string, unknown>; delayMs?: number }
  | { kind: "raw"; status: number; contentType: string; body: string }
  | { kind: "huge" }
  | { kind: "hang" }
  | { kind: "redirect" };

export interface RecordedTokenRequest {
  path: string;
  authorization: string | undefined;
  accept: string | undefined;
  /** The request's parameters, whether sent as a form or (Notion-style) as a JSON object. */
  form: URLSearchParams;
  contentType: string | undefined;
  /** When it arrived (Date.now()). */
  time: number;
}

/**
 * A provider on loopback whose token endpoint does whatever a test scripts: answers well,
 * answers badly, or not at all. It also serves OpenID discovery and a JWKS, and signs ID tokens
 * with its key (or with a stranger's, for the forged case).
 */
export class ScriptedProvider {
  readonly requests: RecordedTokenRequest[] = [];
  behaviour: TokenBehaviour = { kind: "json", body: { access_token: "at", token_type: "Bearer" } };
  /** For grant_type=refresh_token; `behaviour` answers it when unset. */
  refreshBehaviour: TokenBehaviour | undefined;
  /** Answers the next refresh requests, one each, before `refreshBehaviour`. */
  refreshQueue: TokenBehaviour[] = [];
  /** What GET /userinfo answers to a bearer token this provider issued; 404 when unset. */
  userinfo: Record<string, unknown> | undefined;
  /** The userinfo endpoint's HTTP status when `userinfo` is set (a 5xx answers an error body). */
  userinfoStatus = 200;
  /** The revocation endpoint's HTTP status (RFC 7009 §2.2: 200 when accepted). */
  revocationStatus = 200;
  /**
   * When set, the token endpoint checks HTTP Basic client credentials as a provider does: "form"
   * form-decodes the ID and secret (RFC 6749 §2.3.1), "raw" compares `<id>:<secret>` as sent
   * (Notion's docs); a mismatch is RFC 6749 §5.2's 401 invalid_client.
   */
  basicCheck: { decode: "form" | "raw"; clientId: string; clientSecret: string } | undefined;
  /** Requests to `/r/...` (any method): provider-specific revocation endpoints. */
  readonly revocations: Array<{ method: string; path: string; authorization: string | undefined; contentType: string | undefined; body: string; headers: Record<string, string | string[] | undefined> }> = [];
  /** What GET `/m/<name>` answers (metadata endpoints), by path; 404 when unset. */
  metadataAnswers: Record<string, { status: number; body: unknown }> = {};
  /** Requests to `/m/...`. */
  readonly metadataRequests: Array<{ method: string; path: string; authorization: string | undefined }> = [];
  /** What `/r/...` answers: its status and (JSON) body. */
  revocationAnswer: { status: number; body: unknown } = { status: 200, body: undefined };
  /**
   * When set, the only client secrets the token and revocation endpoints accept: any other is
   * refused as RFC 6749 §5.2 says, 401 `invalid_client` (a provider mid-rotation).
   */
  acceptedClientSecrets: string[] | undefined;
  #server: Server;
  #hanging = new Set<() => void>();
  #keys!: { privateKey: jose.CryptoKey; jwk: jose.JWK };

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<ScriptedProvider> {
    const provider = new ScriptedProvider(createServer());
    const { privateKey, publicKey } = await jose.generateKeyPair("RS256");
    provider.#keys = { privateKey, jwk: { ...(await jose.exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" } };
    provider.#server.on("request", (req, res) => void provider.#handle(req, res));
    await new Promise<void>((resolve) => provider.#server.listen(0, "127.0.0.1", resolve));
    return provider;
  }

  get issuer(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  get tokenUrl(): string {
    return `${this.issuer}/token`;
  }

  get userinfoUrl(): string {
    return `${this.issuer}/userinfo`;
  }

  get revocationUrl(): string {
    return `${this.issuer}/revoke`;
  }

  /** Token requests of one grant type. */
  grants(grantType: string): RecordedTokenRequest[] {
    return this.requests.filter((request) => request.path.endsWith("/token") && request.form.get("grant_type") === grantType);
  }

  /** An ID token for `clientId`, signed by this provider unless `signer` says otherwise. */
  async idToken(claims: Record<string, unknown>, signer?: jose.CryptoKey): Promise<string> {
    return new jose.SignJWT({ sub: "user-1", ...claims })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setIssuer((claims.iss as string | undefined) ?? this.issuer)
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(signer ?? this.#keys.privateKey);
  }

  async close(): Promise<void> {
    for (const release of this.#hanging) release();
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  async #handle(req: IncomingMessage, res: import("node:http").ServerResponse): Promise<void> {
    const path = req.url ?? "/";
    if (path === "/.well-known/openid-configuration") {
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          issuer: this.issuer,
          token_endpoint: this.tokenUrl,
          jwks_uri: `${this.issuer}/jwks`,
          revocation_endpoint: this.revocationUrl,
          userinfo_endpoint: `${this.issuer}/userinfo`,
          code_challenge_methods_supported: ["S256"],
          authorization_response_iss_parameter_supported: true,
        }),
      );
      return;
    }
    if (path === "/jwks") {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys: [this.#keys.jwk] }));
      return;
    }
    if (path === "/userinfo" && req.method === "GET") {
      this.requests.push({ path, authorization: req.headers.authorization, accept: req.headers.accept, form: new URLSearchParams(), contentType: undefined, time: Date.now() });
      // OpenID Connect Core §5.3.1: the access token as a bearer token.
      if (this.userinfo === undefined) return void res.writeHead(404).end();
      if (!/^Bearer \S+$/.test(req.headers.authorization ?? "")) return void res.writeHead(401, { "www-authenticate": "Bearer" }).end();
      if (this.userinfoStatus !== 200) return void res.writeHead(this.userinfoStatus, { "content-type": "application/json" }).end('{"error":"server_error"}');
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(this.userinfo));
      return;
    }
    if (path.startsWith("/m/")) {
      this.metadataRequests.push({ method: req.method ?? "", path, authorization: req.headers.authorization });
      const answer = this.metadataAnswers[path];
      if (answer === undefined) return void res.writeHead(404).end();
      res.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.body));
      return;
    }
    if (path.startsWith("/r/")) {
      let body = "";
      for await (const chunk of req) body += chunk;
      this.revocations.push({ method: req.method ?? "", path, authorization: req.headers.authorization, contentType: req.headers["content-type"], body, headers: req.headers });
      const { status, body: answer } = this.revocationAnswer;
      if (answer === undefined) return void res.writeHead(status).end();
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(answer));
      return;
    }
    // `/token` and `/revoke`, or under a templated prefix (`/t/<tenant>/token`) for catalog tests.
    const endpoint = /^(?:\/t\/[^/?#]+)?\/(token|revoke)$/.exec(path)?.[1];
    if (endpoint === undefined || req.method !== "POST") {
      res.writeHead(404).end();
      return;
    }
    let body = "";
    for await (const chunk of req) body += chunk;
    const contentType = req.headers["content-type"];
    const form = contentType?.startsWith("application/json")
      ? new URLSearchParams(Object.entries(JSON.parse(body) as Record<string, string>))
      : new URLSearchParams(body);
    this.requests.push({ path, authorization: req.headers.authorization, accept: req.headers.accept, form, contentType, time: Date.now() });
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const basicPair = basic === undefined ? undefined : Buffer.from(basic, "base64").toString("utf8");
    const basicSecret = basicPair?.slice(basicPair.indexOf(":") + 1);
    recordSecrets(
      ...["code", "code_verifier", "refresh_token", "client_secret", "token", "client_assertion"].map((name) => form.get(name)),
      basicSecret,
      basicSecret === undefined ? undefined : formDecode(basicSecret),
    );
    if (endpoint === "token" && this.basicCheck !== undefined && !basicMatches(basicPair, this.basicCheck)) {
      res.writeHead(401, { "content-type": "application/json", "www-authenticate": "Basic" }).end(JSON.stringify({ error: "invalid_client" }));
      return;
    }
    const presented = (basicSecret === undefined ? undefined : formDecode(basicSecret)) ?? form.get("client_secret") ?? "";
    if (this.acceptedClientSecrets !== undefined && !this.acceptedClientSecrets.includes(presented)) {
      res.writeHead(401, { "content-type": "application/json", "www-authenticate": "Basic" });
      res.end(JSON.stringify({ error: "invalid_client", error_description: "client authentication failed" }));
      return;
    }
    if (endpoint === "revoke") {
      res.writeHead(this.revocationStatus, { "content-type": "application/json" });
      res.end(this.revocationStatus === 200 ? "" : JSON.stringify({ error: "unsupported_token_type" }));
      return;
    }
    const refresh = form.get("grant_type") === "refresh_token";
    const behaviour = (refresh ? (this.refreshQueue.shift() ?? this.refreshBehaviour) : undefined) ?? this.behaviour;
    switch (behaviour.kind) {
      case "json":
        recordSecrets(...["access_token", "refresh_token", "id_token"].map((name) => behaviour.body[name] as string | undefined));
        // Nested tokens (Slack's `authed_user`) are secrets too.
        for (const value of Object.values(behaviour.body)) {
          if (typeof value === "object" && value !== null) {
            recordSecrets(...["access_token", "refresh_token"].map((name) => (value as Record<string, unknown>)[name] as string | undefined));
          }
        }
        if (behaviour.delayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, behaviour.delayMs));
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify(behaviour.body));
        return;
      case "raw":
        res.writeHead(behaviour.status, { "content-type": behaviour.contentType }).end(behaviour.body);
        return;
      case "huge":
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"access_token":"');
        for (let i = 0; i < 64; i++) res.write("x".repeat(16 * 1024));
        res.end('","token_type":"bearer"}');
        return;
      case "hang":
        await new Promise<void>((resolve) => {
          this.#hanging.add(resolve);
          res.once("close", resolve);
        });
        return;
      case "redirect":
        res.writeHead(307, { location: "http://127.0.0.1:1/steal" }).end();
        return;
    }
  }
}

/** application/x-www-form-urlencoded decoding; undefined when the value is not validly encoded. */
function formDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value.replaceAll("+", " "));
  } catch {
    return undefined;
  }
}

function basicMatches(pair: string | undefined, check: NonNullable<ScriptedProvider["basicCheck"]>): boolean {
  if (pair === undefined) return false;
  const colon = pair.indexOf(":");
  const [id, secret] = [pair.slice(0, colon), pair.slice(colon + 1)];
  if (check.decode === "raw") return id === check.clientId && secret === check.clientSecret;
  // RFC 6749 §2.3.1: both parts are form-encoded, so a raw ":" cannot occur in either.
  return !secret.includes(":") && formDecode(id) === check.clientId && formDecode(secret) === check.clientSecret;
}
