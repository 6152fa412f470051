import { createHash, randomBytes } from "node:crypto";
import * as jose from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { TokenEndpointAuthMethod } from "../../gen/oauth2broker/v1/credential_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { SecretBox } from "../../src/crypto/secret-box.js";
import { freePort } from "../../src/store/embedded-ferretdb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { recordSecrets } from "../support/run-record.js";
import { connectionSecretContext } from "../../src/crypto/secret-contexts.js";

let broker: TestBroker;
let provider: ScriptedProvider;
const CLIENT_SECRET = "client-secret-for-callback-tests";
const RETURN_URL = "https://app.example.com/connected";

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  const port = await freePort();
  broker = await startTestBroker({
    BROKER_HTTP_PORT: String(port),
    BROKER_PUBLIC_URL: `http://127.0.0.1:${port}`,
    BROKER_TOKEN_REQUEST_TIMEOUT: "1s",
  });
  await broker.connect(OrganisationService).updateOrganisationSettings({
    settings: { organisationId: "acme", allowedReturnUrls: [RETURN_URL] },
    updateMask: { paths: ["allowed_return_urls"] },
  });
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});
beforeEach(() => {
  provider.requests.length = 0;
  provider.behaviour = { kind: "json", body: { access_token: "at-1", token_type: "Bearer", expires_in: 3600, refresh_token: "rt-1", scope: "read,write" } };
});

const sha256 = (text: string) => createHash("sha256").update(text).digest("base64url");
/** The collection of the state's creation window (`<window>.<random>`). */
const stateCollection = (state: string) => broker.database.db.collection(`oauth_states_w${state.split(".")[0]}`);
const connections = () => broker.database.db.collection("connections");
const secretBox = () => new SecretBox(broker.config.encryptionKeys!);

async function newCredential(overrides: Record<string, unknown> = {}): Promise<string> {
  const { credential } = await broker.connect(CredentialService).createCredential({
    credential: { organisationId: "acme", name: "Scripted", clientId: "client-1", clientSecret: CLIENT_SECRET, tokenUrl: provider.tokenUrl, ...overrides },
  });
  return credential!.id;
}

/** Initialises a connection and returns the state in the URL the browser would be sent to. */
async function initialise(credentialId: string, overrides: Record<string, unknown> = {}): Promise<{ state: string; url: URL }> {
  const { url } = await broker.connect(ConnectionService).initialiseOAuth2Connection({
    organisationId: "acme",
    connectorId: "scripted",
    credential: { id: credentialId, organisationId: "acme" },
    authorizeUrl: `${provider.issuer}/authorize`,
    clientId: "client-1",
    scopes: ["read"],
    ...overrides,
  });
  const parsed = new URL(url);
  recordSecrets(parsed.searchParams.get("state"));
  return { state: parsed.searchParams.get("state")!, url: parsed };
}

async function callback(query: string | Record<string, string>) {
  const search = typeof query === "string" ? query : new URLSearchParams(query).toString();
  const response = await fetch(`${broker.httpUrl}/oauth2/callback?${search}`, { redirect: "manual" });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

describe("GET /oauth2/callback", () => {
  it("exchanges the code, stores the connection with encrypted tokens, and shows the success page", async () => {
    const credentialId = await newCredential();
    const { state, url } = await initialise(credentialId);
    const before = await connections().countDocuments();
    const page = await callback({ state, code: "code-1" });

    expect(page.status).toBe(200);
    expect(page.body).toContain("Account connected");
    expect(page.body).toContain("You can close this window.");
    expect(page.headers.get("cache-control")).toBe("no-store");
    expect(page.headers.get("referrer-policy")).toBe("no-referrer");
    expect(page.headers.get("content-security-policy")).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'$/);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");

    // The token request: RFC 6749 §4.1.3 with PKCE and client_secret_basic.
    expect(provider.requests).toHaveLength(1);
    const [request] = provider.requests;
    expect(request!.form.get("grant_type")).toBe("authorization_code");
    expect(request!.form.get("code")).toBe("code-1");
    expect(request!.form.get("redirect_uri")).toBe(`${broker.httpUrl}/oauth2/callback`);
    expect(sha256(request!.form.get("code_verifier")!)).toBe(url.searchParams.get("code_challenge"));
    expect(request!.form.has("client_secret")).toBe(false);
    // RFC 6749 §2.3.1: HTTP Basic over the form-encoded client ID and secret.
    const [user, password] = Buffer.from(request!.authorization!.replace(/^Basic /, ""), "base64").toString().split(":");
    expect([decodeURIComponent(user!), decodeURIComponent(password!)]).toEqual(["client-1", CLIENT_SECRET]);
    expect(request!.accept).toBe("application/json");

    expect(await connections().countDocuments()).toBe(before + 1);
    const stored = await connections().findOne({ credential_id: credentialId });
    expect(stored).toMatchObject({ organisation_id: "acme", connector_id: "scripted", status: "ACTIVE", token_type: "bearer", scopes: ["read", "write"] });
    expect(stored!.expire_time.getTime()).toBeGreaterThan(Date.now() + 3500_000);
    const text = JSON.stringify(stored);
    for (const secret of ["at-1", "rt-1", "code-1", state]) expect(text).not.toContain(secret);
    expect(secretBox().decrypt(stored!.access_token, connectionSecretContext(String(stored!._id), "access_token"))).toBe("at-1");
    expect(secretBox().decrypt(stored!.refresh_token, connectionSecretContext(String(stored!._id), "refresh_token"))).toBe("rt-1");
    expect(await stateCollection(state).countDocuments({ _id: `consumed:${sha256(state)}` as never })).toBe(1);
  });

  it("authenticates with client_secret_post when the credential says so", async () => {
    const { state } = await initialise(await newCredential({ tokenEndpointAuthMethod: TokenEndpointAuthMethod.CLIENT_SECRET_POST }));
    expect((await callback({ state, code: "c" })).status).toBe(200);
    expect(provider.requests[0]!.authorization).toBeUndefined();
    expect(provider.requests[0]!.form.get("client_id")).toBe("client-1");
    expect(provider.requests[0]!.form.get("client_secret")).toBe(CLIENT_SECRET);
  });

  it("sends no code_verifier for a credential without PKCE", async () => {
    const { state } = await initialise(await newCredential({ disablePkce: true }));
    expect((await callback({ state, code: "c" })).status).toBe(200);
    expect(provider.requests[0]!.form.has("code_verifier")).toBe(false);
  });

  it("accepts GitHub's form-encoded token response", async () => {
    provider.behaviour = { kind: "raw", status: 200, contentType: "application/x-www-form-urlencoded", body: "access_token=gho_abc&scope=repo%2Cgist&token_type=bearer" };
    const credentialId = await newCredential();
    const { state } = await initialise(credentialId);
    expect((await callback({ state, code: "c" })).status).toBe(200);
    const stored = await connections().findOne({ credential_id: credentialId });
    expect(stored?.scopes).toEqual(["repo", "gist"]);
    expect(stored?.expire_time).toBeUndefined();
  });

  it("redirects to the return URL with connection_id", async () => {
    const credentialId = await newCredential();
    const { state } = await initialise(credentialId, { returnUrl: `${RETURN_URL}?tab=apps` });
    const response = await callback({ state, code: "c" });
    expect(response.status).toBe(303);
    const location = new URL(response.headers.get("location")!);
    expect(location.origin + location.pathname).toBe(RETURN_URL);
    expect(location.searchParams.get("tab")).toBe("apps");
    const stored = await connections().findOne({ credential_id: credentialId });
    expect(location.searchParams.get("connection_id")).toBe(String(stored!._id));
    expect(response.headers.get("referrer-policy")).toBe("no-referrer");
  });

  describe("refuses, storing nothing", () => {
    async function expectNothingStored(run: () => Promise<void>): Promise<void> {
      const before = await connections().countDocuments();
      await run();
      expect(await connections().countDocuments()).toBe(before);
    }
    const expiredPage = (page: { status: number; body: string }) => {
      expect(page.status).toBe(400);
      expect(page.body).toContain("This sign-in link has expired or was already used");
    };

    it("a replayed state", async () => {
      const { state } = await initialise(await newCredential());
      expect((await callback({ state, code: "c" })).status).toBe(200);
      await expectNothingStored(async () => expiredPage(await callback({ state, code: "c" })));
      expect(provider.requests).toHaveLength(1);
    });

    it("an expired state, even before it is swept", async () => {
      const { state } = await initialise(await newCredential());
      await stateCollection(state).updateOne({ _id: sha256(state) as never }, { $set: { expire_time: new Date(Date.now() - 1000) } });
      await expectNothingStored(async () => expiredPage(await callback({ state, code: "c" })));
      expect(provider.requests).toHaveLength(0);
    });

    it("a forged state", async () => {
      await expectNothingStored(async () => expiredPage(await callback({ state: randomBytes(32).toString("base64url"), code: "c" })));
      expect(provider.requests).toHaveLength(0);
    });

    it("a parameter given twice, without using up the state", async () => {
      const { state } = await initialise(await newCredential());
      await expectNothingStored(async () => expiredPage(await callback(`state=${state}&code=a&code=b`)));
      expect(provider.requests).toHaveLength(0);
      expect(await stateCollection(state).countDocuments({ _id: sha256(state) as never })).toBe(1);
      expect(await stateCollection(state).countDocuments({ _id: `consumed:${sha256(state)}` as never })).toBe(0);
    });

    it("a missing code", async () => {
      const { state } = await initialise(await newCredential());
      await expectNothingStored(async () => {
        const page = await callback({ state });
        expect(page.status).toBe(400);
        expect(page.body).toContain("The provider sent no authorization code.");
      });
      expect(provider.requests).toHaveLength(0);
    });

    it("a provider error, shown escaped, without a token request", async () => {
      const { state } = await initialise(await newCredential());
      await expectNothingStored(async () => {
        const page = await callback({ state, error: "access_denied", error_description: '<script>alert("x")</script> & more', error_uri: "https://evil.example/" });
        expect(page.status).toBe(400);
        expect(page.body).toContain("The provider said: &#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; more");
        expect(page.body).not.toContain("<script");
        expect(page.body).not.toContain("evil.example");
      });
      expect(provider.requests).toHaveLength(0);
      expiredPage(await callback({ state, code: "c" })); // the attempt is over
    });

    it("a provider error, passed to the return URL", async () => {
      const { state } = await initialise(await newCredential(), { returnUrl: RETURN_URL });
      const response = await callback({ state, error: "access_denied" });
      expect(response.status).toBe(303);
      expect(response.headers.get("location")).toBe(`${RETURN_URL}?error=access_denied`);
    });

    it("a client ID changed after initialise, without contacting the provider", async () => {
      const credentialId = await newCredential();
      const { state } = await initialise(credentialId, { returnUrl: RETURN_URL });
      await broker.connect(CredentialService).updateCredential({
        credential: { id: credentialId, organisationId: "acme", clientId: "client-2" },
        updateMask: { paths: ["client_id"] },
      });
      await expectNothingStored(async () => {
        const response = await callback({ state, code: "c" });
        expect(response.headers.get("location")).toBe(`${RETURN_URL}?error=credential_changed`);
      });
      expect(provider.requests).toHaveLength(0);
    });

    it("an iss that is not the credential's issuer (mix-up), before the code leaves the broker", async () => {
      const { state } = await initialise(await newCredential({ issuer: provider.issuer }));
      await expectNothingStored(async () => {
        const page = await callback({ state, code: "c", iss: "https://attacker.example" });
        expect(page.status).toBe(400);
        expect(page.body).toContain("The response did not come from the expected provider.");
      });
      expect(provider.requests).toHaveLength(0);
    });

    it("a missing iss from a provider that always sends one", async () => {
      const { state } = await initialise(
        await newCredential({ issuer: provider.issuer, authorizationResponseIssParameterSupported: true }),
        { returnUrl: RETURN_URL },
      );
      await expectNothingStored(async () => {
        expect((await callback({ state, code: "c" })).headers.get("location")).toBe(`${RETURN_URL}?error=issuer_mismatch`);
      });
      expect(provider.requests).toHaveLength(0);
    });

    it.each([
      ["a 500", { kind: "raw", status: 500, contentType: "text/plain", body: "oops" }],
      ["invalid JSON", { kind: "raw", status: 200, contentType: "application/json", body: '{"access_token":' }],
      ["an HTML page", { kind: "raw", status: 200, contentType: "text/html", body: "<html><body>Sign in</body></html>" }],
      ["an OAuth error", { kind: "json", body: { error: "invalid_grant", error_description: "expired" } }],
      ["a body over 256 KiB", { kind: "huge" }],
      ["no answer within the timeout", { kind: "hang" }],
      ["a redirect", { kind: "redirect" }],
    ] as const)("a token endpoint that returns %s", async (_label, behaviour) => {
      provider.behaviour = behaviour as never;
      const { state } = await initialise(await newCredential(), { returnUrl: RETURN_URL });
      await expectNothingStored(async () => {
        const started = Date.now();
        const response = await callback({ state, code: "c" });
        expect(response.headers.get("location")).toBe(`${RETURN_URL}?error=token_exchange_failed`);
        expect(Date.now() - started).toBeLessThan(5_000);
      });
      expect(provider.requests).toHaveLength(1);
    });

    it("a token endpoint that fails, with the page when there is no return URL", async () => {
      provider.behaviour = { kind: "raw", status: 500, contentType: "text/plain", body: "oops" };
      const { state } = await initialise(await newCredential());
      const page = await callback({ state, code: "c" });
      expect(page.status).toBe(502);
      expect(page.body).toContain("The provider did not complete the connection.");
      expect(page.body).not.toContain("oops");
    });
  });

  it("lets exactly one of two concurrent callbacks with one state connect", async () => {
    const credentialId = await newCredential();
    for (let round = 0; round < 5; round++) {
      const { state } = await initialise(credentialId);
      const responses = await Promise.all([callback({ state, code: "c" }), callback({ state, code: "c" })]);
      expect(responses.map((r) => r.status).sort()).toEqual([200, 400]);
    }
    expect(await connections().countDocuments({ credential_id: credentialId })).toBe(5);
  });

  describe("ID tokens (openid)", () => {
    async function openidAttempt() {
      const credentialId = await newCredential({ issuer: provider.issuer });
      const { state, url } = await initialise(credentialId, { scopes: ["openid"], returnUrl: RETURN_URL });
      return { credentialId, state, nonce: url.searchParams.get("nonce")! };
    }

    it("verifies the signature, issuer, audience and nonce, and stores the ID token", async () => {
      const { credentialId, state, nonce } = await openidAttempt();
      const idToken = await provider.idToken({ aud: "client-1", nonce });
      provider.behaviour = { kind: "json", body: { access_token: "at", token_type: "Bearer", id_token: idToken } };
      const response = await callback({ state, code: "c", iss: provider.issuer });
      expect(new URL(response.headers.get("location")!).searchParams.has("connection_id")).toBe(true);
      const stored = await connections().findOne({ credential_id: credentialId });
      expect(secretBox().decrypt(stored!.id_token, connectionSecretContext(String(stored!._id), "id_token"))).toBe(idToken);
    });

    it.each([
      ["a wrong nonce", async (nonce: string) => provider.idToken({ aud: "client-1", nonce: `${nonce}x` })],
      ["no nonce", async () => provider.idToken({ aud: "client-1" })],
      ["another audience", async (nonce: string) => provider.idToken({ aud: "someone-else", nonce })],
      ["another issuer", async (nonce: string) => provider.idToken({ aud: "client-1", nonce, iss: "https://attacker.example" })],
      [
        "a signature by another key",
        async (nonce: string) => provider.idToken({ aud: "client-1", nonce }, (await jose.generateKeyPair("RS256")).privateKey),
      ],
      ["garbage", async () => "not.a.jwt"],
    ])("refuses an ID token with %s", async (_label, make) => {
      const { credentialId, state, nonce } = await openidAttempt();
      provider.behaviour = { kind: "json", body: { access_token: "at", token_type: "Bearer", id_token: await make(nonce) } };
      const response = await callback({ state, code: "c" });
      expect(response.headers.get("location")).toBe(`${RETURN_URL}?error=invalid_id_token`);
      expect(await connections().countDocuments({ credential_id: credentialId })).toBe(0);
    });

    it("refuses a token response with no ID token to an openid request (it stored the connection unverified)", async () => {
      const { credentialId, state } = await openidAttempt();
      provider.behaviour = { kind: "json", body: { access_token: "at", token_type: "Bearer" } };
      const response = await callback({ state, code: "c", iss: provider.issuer });
      expect(response.headers.get("location")).toBe(`${RETURN_URL}?error=invalid_id_token`);
      expect(await connections().countDocuments({ credential_id: credentialId })).toBe(0);
    });
  });

  it("answers other paths and methods plainly", async () => {
    const notFound = await fetch(`${broker.httpUrl}/nope`);
    expect(notFound.status).toBe(404);
    expect(notFound.headers.get("cache-control")).toBe("no-store");
    const post = await fetch(`${broker.httpUrl}/oauth2/callback?state=x`, { method: "POST" });
    expect(post.status).toBe(405);
  });

  it("logs outcomes without codes, states or tokens", async () => {
    const { state } = await initialise(await newCredential());
    await callback({ state, code: "code-for-log-check" });
    const text = JSON.stringify(broker.logs);
    expect(broker.logs.some((line) => line.outcome === "connected")).toBe(true);
    for (const secret of ["code-for-log-check", state, "at-1", "rt-1", CLIENT_SECRET]) expect(text).not.toContain(secret);
  });
});
