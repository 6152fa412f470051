import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pollDeviceToken, requestDeviceAuthorization } from "../../src/oauth/device-authorization.js";
import type { TokenClient } from "../../src/oauth/token-exchange.js";
import { ProviderCallError } from "../../src/network/provider-call-error.js";

/** A device authorization endpoint that answers what each test sets, and records the request. */
let server: Server;
let base: string;
let answer: { status: number; body: unknown } = { status: 200, body: {} };
let seen: { authorization: string | undefined; body: string } | undefined;

beforeAll(async () => {
  server = createServer(async (req: IncomingMessage, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    seen = { authorization: req.headers.authorization, body };
    res.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const client = (): TokenClient => ({ tokenUrl: `${base}/token`, clientId: "cli", clientSecret: "s3cret", authMethod: "client_secret_basic", issuer: undefined });

async function failure(call: Promise<unknown>): Promise<ProviderCallError> {
  const error = await call.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(ProviderCallError);
  return error as ProviderCallError;
}

describe("requestDeviceAuthorization (RFC 8628 §3.1-3.2)", () => {
  it("sends the scope with the client's authentication and reads the codes, 5 s when no interval is given", async () => {
    answer = { status: 200, body: { device_code: "dc-1", user_code: "ABCD-EFGH", verification_uri: "https://p.example/device", expires_in: 600 } };
    const result = await requestDeviceAuthorization(client(), `${base}/device`, "read write", fetch);
    expect(result).toEqual({
      deviceCode: "dc-1",
      userCode: "ABCD-EFGH",
      verificationUri: "https://p.example/device",
      verificationUriComplete: undefined,
      expiresIn: 600,
      interval: 5,
    });
    expect(seen!.authorization).toBe(`Basic ${Buffer.from("cli:s3cret").toString("base64")}`);
    expect(new URLSearchParams(seen!.body).get("scope")).toBe("read write");
    expect(new URLSearchParams(seen!.body).get("client_id")).toBe("cli");
  });

  it("takes Google's verification_url and numbers sent as strings", async () => {
    answer = { status: 200, body: { device_code: "dc-2", user_code: "GQVQ-JKEC", verification_url: "https://www.google.com/device", expires_in: "1800", interval: "7" } };
    const result = await requestDeviceAuthorization(client(), `${base}/device`, undefined, fetch);
    expect(result.verificationUri).toBe("https://www.google.com/device");
    expect([result.expiresIn, result.interval]).toEqual([1800, 7]);
    expect(new URLSearchParams(seen!.body).has("scope")).toBe(false);
  });

  it("names the provider's error code, and what is missing from an answer", async () => {
    answer = { status: 400, body: { error: "invalid_scope" } };
    expect((await failure(requestDeviceAuthorization(client(), `${base}/device`, "x", fetch))).oauthError).toBe("invalid_scope");
    answer = { status: 200, body: { device_code: "dc-3", verification_uri: "https://p.example/device", expires_in: 600 } };
    expect((await failure(requestDeviceAuthorization(client(), `${base}/device`, "x", fetch))).message).toBe('the response has no "user_code"');
    answer = { status: 200, body: { device_code: "dc-3", user_code: "A", verification_uri: "https://p.example/device", expires_in: 0 } };
    expect((await failure(requestDeviceAuthorization(client(), `${base}/device`, "x", fetch))).message).toBe('"expires_in" is not a positive whole number');
  });
});

describe("pollDeviceToken (RFC 8628 §3.4-3.5)", () => {
  it("sends the device code grant and reads the tokens, or the error code to act on", async () => {
    answer = { status: 200, body: { access_token: "at-1", token_type: "Bearer", expires_in: 60 } };
    const tokens = await pollDeviceToken(client(), "dc-1", fetch);
    expect(tokens.accessToken).toBe("at-1");
    const sent = new URLSearchParams(seen!.body);
    expect(sent.get("grant_type")).toBe("urn:ietf:params:oauth:grant-type:device_code");
    expect(sent.get("device_code")).toBe("dc-1");
    for (const code of ["authorization_pending", "slow_down", "access_denied", "expired_token"]) {
      answer = { status: 400, body: { error: code } };
      expect((await failure(pollDeviceToken(client(), "dc-1", fetch))).oauthError).toBe(code);
    }
  });
});
