import * as jose from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { OutboundPolicy } from "../../src/network/address-policy.js";
import { boundedFetch } from "../../src/network/bounded-fetch.js";
import { isUnanswered, ProviderCallError, type ProviderCallErrorCode } from "../../src/network/provider-call-error.js";
import { discoverAuthorizationServer } from "../../src/oauth/discovery.js";
import { fetchUserinfoAccount, OIDC_ACCOUNT_FIELDS } from "../../src/oauth/external-account.js";
import { IdTokenVerifier } from "../../src/oauth/id-token.js";
import { exchangeAuthorizationCode, revokeToken, type TokenClient } from "../../src/oauth/token-exchange.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

const TIMEOUT_MS = 500;
const MAX_BYTES = 64 * 1024;

/** What a rejected call threw, checked to be a ProviderCallError. */
async function failure(call: Promise<unknown>): Promise<ProviderCallError> {
  const error = await call.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ProviderCallError);
  return error as ProviderCallError;
}

describe("ProviderCallError", () => {
  it("carries its code, the provider's OAuth error, the HTTP status and the cause", () => {
    const cause = new TypeError("fetch failed");
    const error = new ProviderCallError("oauth_error", "provider error (HTTP 400)", { oauthError: "invalid_grant", status: 400, cause });
    expect(error).toMatchObject({ name: "ProviderCallError", code: "oauth_error", message: "provider error (HTTP 400)", oauthError: "invalid_grant", status: 400 });
    expect(error.cause).toBe(cause);
  });

  it("has no cause when none was given", () => {
    const error = new ProviderCallError("http_error", "HTTP 500", { status: 500 });
    expect("cause" in error).toBe(false);
    expect(error.oauthError).toBeUndefined();
  });

  it("calls unanswered only the failures that left the provider's answer unknown", () => {
    const codes: Record<ProviderCallErrorCode, boolean> = {
      unreachable: true,
      redirected: true,
      response_too_large: true,
      http_error: false,
      invalid_response: false,
      oauth_error: false,
      id_token_invalid: false,
      discovery_failed: false,
      revocation_failed: false,
    };
    for (const [code, unanswered] of Object.entries(codes)) {
      expect(isUnanswered(new ProviderCallError(code as ProviderCallErrorCode, "x")), code).toBe(unanswered);
    }
    expect(isUnanswered(new Error("refused: x"))).toBe(false);
  });
});

describe("provider calls fail with a code", () => {
  let provider: ScriptedProvider;
  let fetchImpl: typeof fetch;
  let client: TokenClient;
  const grant = { code: "code-1", redirectUri: "https://broker.example/callback", codeVerifier: undefined };

  beforeAll(async () => {
    provider = await ScriptedProvider.start();
    fetchImpl = boundedFetch({ timeoutMs: TIMEOUT_MS, maxResponseBytes: MAX_BYTES }, new OutboundPolicy(["127.0.0.1"]));
    client = { tokenUrl: provider.tokenUrl, clientId: "client-1", clientSecret: "secret-1", authMethod: "client_secret_basic", issuer: provider.issuer };
  });
  afterAll(() => provider.close());
  beforeEach(() => {
    provider.behaviour = { kind: "json", body: { access_token: "at", token_type: "Bearer" } };
    provider.revocationStatus = 200;
    provider.userinfo = undefined;
  });

  it("oauth_error: the provider's RFC 6749 §5.2 error, with the status", async () => {
    provider.behaviour = { kind: "raw", status: 400, contentType: "application/json", body: '{"error":"invalid_grant"}' };
    const error = await failure(exchangeAuthorizationCode(client, grant, fetchImpl));
    expect(error).toMatchObject({ code: "oauth_error", message: "provider error (HTTP 400)", oauthError: "invalid_grant", status: 400 });
  });

  it("http_error: a failing status with no OAuth error", async () => {
    provider.behaviour = { kind: "raw", status: 503, contentType: "application/json", body: "{}" };
    const error = await failure(exchangeAuthorizationCode(client, grant, fetchImpl));
    expect(error).toMatchObject({ code: "http_error", message: "HTTP 503", status: 503, oauthError: undefined });
  });

  it("invalid_response: a body that is not a token response", async () => {
    provider.behaviour = { kind: "raw", status: 200, contentType: "text/html", body: "<html></html>" };
    expect(await failure(exchangeAuthorizationCode(client, grant, fetchImpl))).toMatchObject({
      code: "invalid_response",
      message: "HTTP 200 with a body that is neither JSON nor form-encoded",
      status: 200,
    });
    provider.behaviour = { kind: "json", body: { token_type: "Bearer" } };
    expect(await failure(exchangeAuthorizationCode(client, grant, fetchImpl))).toMatchObject({ code: "invalid_response", message: 'no "access_token"' });
  });

  it("regression: an oversized chunked answer was reported as a failed read; it is response_too_large", async () => {
    provider.behaviour = { kind: "huge" };
    const error = await failure(exchangeAuthorizationCode(client, grant, fetchImpl));
    expect(error).toMatchObject({ code: "response_too_large", message: `response larger than ${MAX_BYTES} bytes`, status: 200 });
  });

  it("redirected: a redirect is never followed", async () => {
    provider.behaviour = { kind: "redirect" };
    const error = await failure(exchangeAuthorizationCode(client, grant, fetchImpl));
    expect(error).toMatchObject({ code: "redirected", message: "redirect (HTTP 307) refused", status: 307 });
  });

  it("unreachable: no answer in time, with the abort as its cause", async () => {
    provider.behaviour = { kind: "hang" };
    const error = await failure(exchangeAuthorizationCode(client, grant, fetchImpl));
    expect(error).toMatchObject({ code: "unreachable", message: `no response within ${TIMEOUT_MS} ms` });
    expect(error.cause).toBeInstanceOf(Error);
  });

  it("unreachable: a refused connection, with the network error as its cause", async () => {
    const error = await failure(fetchImpl("http://127.0.0.1:1/token"));
    expect(error).toMatchObject({ code: "unreachable", message: "request failed" });
    expect(error.cause).toBeInstanceOf(Error);
  });

  it("unreachable: a destination the outbound policy refuses before any request", async () => {
    const error = await failure(fetchImpl("http://10.1.2.3/token"));
    expect(error).toMatchObject({ code: "unreachable", message: "refused: plain http is allowed only to hosts on BROKER_OUTBOUND_ALLOWLIST" });
  });

  it("unreachable: a host name refused at connect time is recognised by its type, not its text", async () => {
    // No allow-list: localhost passes the URL check (https, a name) and is refused when resolved.
    const strict = boundedFetch({ timeoutMs: TIMEOUT_MS, maxResponseBytes: MAX_BYTES }, new OutboundPolicy([]));
    const error = await failure(strict(`https://localhost:${new URL(provider.issuer).port}/token`));
    expect(error).toMatchObject({ code: "unreachable", message: "refused: localhost resolves to a private or special address" });
    // undici's "fetch failed", whose own cause is the policy's coded refusal.
    expect((error.cause as Error).cause).toBeInstanceOf(ProviderCallError);
  });

  it("revocation_failed: the provider's error as the message, with the status", async () => {
    provider.revocationStatus = 400;
    const error = await failure(revokeToken(client, provider.revocationUrl, { value: "rt", hint: "refresh_token" }, fetchImpl));
    expect(error).toMatchObject({ code: "revocation_failed", message: "unsupported_token_type", oauthError: "unsupported_token_type", status: 400 });
  });

  it("discovery_failed: no discovery document, with the last failure as its cause", async () => {
    const error = await failure(discoverAuthorizationServer(`${provider.issuer}/elsewhere`, fetchImpl));
    expect(error).toMatchObject({ code: "discovery_failed", message: "no usable discovery document" });
    expect(error.cause).toBeInstanceOf(Error);
  });

  it("id_token_invalid: a wrong nonce, or a signature by another key (with jose's error as its cause)", async () => {
    const verifier = new IdTokenVerifier(fetchImpl);
    const expected = { issuer: provider.issuer, clientId: "client-1", nonce: "n-1" };
    const wrongNonce = await provider.idToken({ aud: "client-1", nonce: "n-2" });
    expect(await failure(verifier.verify(wrongNonce, expected))).toMatchObject({ code: "id_token_invalid", message: "ID token rejected (nonce)" });
    const { privateKey } = await jose.generateKeyPair("RS256");
    const forged = await provider.idToken({ aud: "client-1", nonce: "n-1" }, privateKey);
    const error = await failure(verifier.verify(forged, expected));
    expect(error).toMatchObject({ code: "id_token_invalid", message: "ID token rejected (ERR_JWS_SIGNATURE_VERIFICATION_FAILED)" });
    expect(error.cause).toBeInstanceOf(jose.errors.JOSEError);
  });

  it("discovery_failed: an ID token whose issuer has no discovery document", async () => {
    const verifier = new IdTokenVerifier(fetchImpl);
    const issuer = `${provider.issuer}/elsewhere`;
    const token = await provider.idToken({ aud: "client-1", iss: issuer });
    const error = await failure(verifier.verify(token, { issuer, clientId: "client-1", nonce: undefined }));
    expect(error).toMatchObject({ code: "discovery_failed", message: "issuer discovery failed" });
    expect(error.cause).toBeInstanceOf(Error);
  });

  it("http_error: a userinfo endpoint that does not answer 200", async () => {
    const error = await failure(fetchUserinfoAccount(provider.userinfoUrl, "at", OIDC_ACCOUNT_FIELDS, fetchImpl));
    expect(error).toMatchObject({ code: "http_error", message: "userinfo answered HTTP 404", status: 404 });
  });
});
