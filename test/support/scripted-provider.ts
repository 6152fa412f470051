import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as jose from "jose";

/** What the token endpoint does next. */
export type TokenBehaviour =
  | { kind: "json"; body: Record<string, unknown> }
  | { kind: "raw"; status: number; contentType: string; body: string }
  | { kind: "huge" }
  | { kind: "hang" }
  | { kind: "redirect" };

export interface RecordedTokenRequest {
  authorization: string | undefined;
  accept: string | undefined;
  form: URLSearchParams;
}

/**
 * A provider on loopback whose token endpoint does whatever a test scripts: answers well,
 * answers badly, or not at all. It also serves OpenID discovery and a JWKS, and signs ID tokens
 * with its key (or with a stranger's, for the forged case).
 */
export class ScriptedProvider {
  readonly requests: RecordedTokenRequest[] = [];
  behaviour: TokenBehaviour = { kind: "json", body: { access_token: "at", token_type: "Bearer" } };
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
      res.end(JSON.stringify({ issuer: this.issuer, token_endpoint: this.tokenUrl, jwks_uri: `${this.issuer}/jwks` }));
      return;
    }
    if (path === "/jwks") {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys: [this.#keys.jwk] }));
      return;
    }
    if (path !== "/token" || req.method !== "POST") {
      res.writeHead(404).end();
      return;
    }
    let body = "";
    for await (const chunk of req) body += chunk;
    this.requests.push({ authorization: req.headers.authorization, accept: req.headers.accept, form: new URLSearchParams(body) });
    const behaviour = this.behaviour;
    switch (behaviour.kind) {
      case "json":
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
