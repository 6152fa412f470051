import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectError } from "../support/errors.js";
import { expectUnchanged } from "./support.js";
import { stateCollection } from "../support/state-store.js";

/**
 * Hostile values in requests. Every case asserts the exact error and that nothing was stored.
 */
let broker: TestBroker;
let credentialId: string;

beforeAll(async () => {
  broker = await startTestBroker();
  const { credential } = await broker.connect(CredentialService).createCredential({
    credential: { organisationId: "acme", name: "Provider", clientId: "client-1", clientSecret: "s3cret", tokenUrl: "https://idp.example/token" },
  });
  credentialId = credential!.id;
  await broker.connect(OrganisationService).updateOrganisationSettings({
    settings: { organisationId: "acme", allowedReturnUrls: ["https://app.example.com/oauth"] },
    updateMask: { paths: ["allowed_return_urls"] },
  });
});
afterAll(() => broker.close());

function initialise(overrides: Record<string, unknown>) {
  return broker.connect(ConnectionService).initialiseOAuth2Connection({
    organisationId: "acme",
    connectorId: "c",
    credential: { id: credentialId, organisationId: "acme" },
    authorizeUrl: "https://idp.example/authorize",
    clientId: "client-1",
    ...overrides,
  });
}

async function refused(call: () => Promise<unknown>, message: string, code = Code.InvalidArgument): Promise<void> {
  await expectUnchanged(broker.database.db, async () => {
    expect(await connectError(call())).toMatchObject({ code, rawMessage: message });
  });
}

describe("parameter pollution", () => {
  it.each(["state", "redirect_uri", "client_id", "response_type", "code_challenge", "code_challenge_method", "nonce", "scope", "prompt"])(
    "additional_params cannot override %s",
    async (key) => {
      await refused(() => initialise({ additionalParams: `${key}=attacker` }), `"additional_params" must not set "${key}"`);
      await refused(() => initialise({ additionalParams: `x=1&${encodeURIComponent(key)}=attacker` }), `"additional_params" must not set "${key}"`);
    },
  );

  it.each(["state", "redirect_uri", "client_id", "response_type", "code_challenge"])("authorize_url cannot carry %s", async (key) => {
    await refused(() => initialise({ authorizeUrl: `https://idp.example/authorize?${key}=attacker` }), `"authorize_url" must not set "${key}"`);
  });

  it.each([
    ["a duplicated key", "hd=a&hd=b", '"additional_params" must not repeat "hd"'],
    ["a key already in authorize_url", "tenant=b", '"additional_params" must not repeat "tenant" from "authorize_url"'],
    ["a JAR request object", "request=eyJ", '"additional_params" must not set "request"'],
    ["a response mode", "response_mode=fragment", '"additional_params" must not set "response_mode"'],
  ])("additional_params with %s", async (_label, additionalParams, message) => {
    await refused(() => initialise({ authorizeUrl: "https://idp.example/authorize?tenant=a", additionalParams }), message);
  });
});

describe("CR, LF and NUL in string fields", () => {
  const bad = ["\r\nX-Injected: 1", "\n", "\u0000"];
  const cases: Array<[string, (v: string) => Promise<unknown>, string]> = [
    ["organisation_id", (v) => initialise({ organisationId: `acme${v}` }), '"organisation_id" must be 1 to 128 characters of A-Z a-z 0-9 . _ -'],
    ["connector_id", (v) => initialise({ connectorId: `c${v}` }), '"connector_id" must be 1 to 128 characters of A-Z a-z 0-9 . _ -'],
    ["credential.id", (v) => initialise({ credential: { id: `${credentialId}${v}`, organisationId: "acme" } }), '"credential.id" must not contain control characters'],
    ["client_id", (v) => initialise({ clientId: `client-1${v}` }), '"client_id" must not contain control characters'],
    ["authorize_url", (v) => initialise({ authorizeUrl: `https://idp.example/a${v}` }), '"authorize_url" must not contain control characters'],
    ["scopes", (v) => initialise({ scopes: [`read${v}`] }), '"scopes[0]" must be a scope token (printable ASCII without space or " or \\)'],
    ["prompt", (v) => initialise({ prompt: `login${v}` }), '"prompt" must not contain control characters'],
    ["additional_params", (v) => initialise({ additionalParams: `a=b${v}` }), '"additional_params" must not contain control characters'],
    ["return_url", (v) => initialise({ returnUrl: `https://app.example.com/oauth${v}` }), '"return_url" must not contain control characters'],
    ["end_user_id", (v) => initialise({ endUserId: `alice${v}`, returnUrl: "https://app.example.com/oauth" }), '"end_user_id" must not contain control characters'],
    [
      "credential.name",
      (v) => broker.connect(CredentialService).createCredential({ credential: { organisationId: "acme", name: `n${v}`, clientId: "c", clientSecret: "s", tokenUrl: "https://idp.example/t" } }),
      '"credential.name" must not contain control characters',
    ],
    [
      "credential.client_secret",
      (v) => broker.connect(CredentialService).createCredential({ credential: { organisationId: "acme", name: "n", clientId: "c", clientSecret: `s${v}`, tokenUrl: "https://idp.example/t" } }),
      '"credential.client_secret" must not contain control characters',
    ],
  ];
  it.each(cases.flatMap(([field, call, message]) => bad.map((v) => [field, JSON.stringify(v), call, message, v] as const)))(
    "%s with %s",
    async (_field, _shown, call, message, value) => {
      await refused(() => call(value), message);
    },
  );
});

describe("very long values", () => {
  it.each([
    ["organisation_id", { organisationId: "a".repeat(129) }, '"organisation_id" must be 1 to 128 characters of A-Z a-z 0-9 . _ -'],
    ["client_id", { clientId: "c".repeat(513) }, '"client_id" must be at most 512 characters'],
    ["authorize_url", { authorizeUrl: `https://idp.example/${"a".repeat(3000)}` }, '"authorize_url" must be at most 2048 characters'],
    ["additional_params", { additionalParams: `a=${"b".repeat(5000)}` }, '"additional_params" must be at most 4096 characters'],
    ["end_user_id", { endUserId: "u".repeat(257), returnUrl: "https://app.example.com/oauth" }, '"end_user_id" must be at most 256 characters'],
    ["scopes", { scopes: Array.from({ length: 500 }, (_, i) => `s${i}`) }, '"scopes" must have at most 100 entries'],
    ["scopes (total)", { scopes: Array.from({ length: 100 }, (_, i) => `${i}`.padEnd(256, "s")) }, '"scopes" must total at most 2048 characters'],
  ])("%s", async (_field, overrides, message) => {
    await refused(() => initialise(overrides), message);
  });

  it("bounds what one state stores (100 scopes of 256 characters stored 25 KB per state)", async () => {
    const longest = {
      connectorId: "c".repeat(128),
      clientId: "client-1",
      scopes: Array.from({ length: 8 }, (_, i) => `${i}`.padEnd(240, "s")),
      returnUrl: `https://app.example.com/oauth/${"r".repeat(2000)}`,
      endUserId: "u".repeat(256),
    };
    const { url } = await initialise(longest);
    const states = await stateCollection(broker.database.db, new URL(url).searchParams.get("state")!).find().toArray();
    const stored = states.map((state) => JSON.stringify(state)).filter((text) => text.includes(longest.endUserId));
    expect(stored).toHaveLength(1);
    // Everything the caller controls, at its limit, stays under 6 KB.
    expect(stored[0]!.length).toBeLessThan(6 * 1024);
  });

  it("a body over 256 KiB is refused before it is parsed", async () => {
    await refused(() => initialise({ additionalParams: "x".repeat(300 * 1024) }), "message size is larger than configured readMaxBytes 262144", Code.ResourceExhausted);
  });
});

describe("malformed Connect JSON", () => {
  const post = (body: Buffer | string) =>
    fetch(`${broker.httpUrl}/oauth2broker.v1.CredentialService/CreateCredential`, {
      method: "POST",
      headers: { authorization: `Bearer ${broker.adminToken}`, "content-type": "application/json" },
      body,
    });

  it("invalid UTF-8 in a string field", async () => {
    await expectUnchanged(broker.database.db, async () => {
      const body = Buffer.concat([
        Buffer.from('{"credential":{"organisationId":"acme","name":"'),
        Buffer.from([0xc3, 0x28, 0xff]),
        Buffer.from('","clientId":"c","clientSecret":"s","tokenUrl":"https://idp.example/t"}}'),
      ]);
      const response = await post(body);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ code: "invalid_argument", message: '"credential.name" must be valid UTF-8' });
    });
  });

  it("deeply nested JSON", async () => {
    await expectUnchanged(broker.database.db, async () => {
      const response = await post(`{"credential":${'{"name":'.repeat(5000)}"x"${"}".repeat(5001)}`);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { code: string }).code).toBe("invalid_argument");
      const arrays = await post(`${"[".repeat(100_000)}${"]".repeat(100_000)}`);
      expect(arrays.status).toBe(400);
    });
  });

  it("not JSON at all, and unknown fields", async () => {
    await expectUnchanged(broker.database.db, async () => {
      expect((await post("{not json")).status).toBe(400);
      expect((await post('{"credential":{"organisationId":"acme","isAdmin":true}}')).status).toBe(400);
    });
  });
});

describe("URL tricks", () => {
  it.each([
    ["javascript:", "javascript:alert(1)", '"authorize_url" must be an https URL'],
    ["data:", "data:text/html,<script>alert(1)</script>", '"authorize_url" must be an https URL'],
    ["user info", "https://idp.example@evil.example/authorize", '"authorize_url" must not contain a user name or password'],
    ["a fragment", "https://idp.example/authorize#state=x", '"authorize_url" must not contain a fragment'],
    ["plain http to a public host", "http://idp.example/authorize", '"authorize_url" must be an https URL (http is allowed only for loopback hosts)'],
    ["a relative URL", "//evil.example/authorize", '"authorize_url" must be an absolute URL'],
  ])("authorize_url with %s", async (_label, authorizeUrl, message) => {
    await refused(() => initialise({ authorizeUrl }), message);
  });

  const notAllowed = '"return_url" is not in the organisation\'s allowed return URLs';
  it.each([
    ["javascript:", "javascript:alert(document.cookie)", '"return_url" must be an https URL'],
    ["data:", "data:text/html;base64,PHNjcmlwdD4=", '"return_url" must be an https URL'],
    ["user info pointing elsewhere", "https://app.example.com@evil.example/oauth", '"return_url" must not contain a user name or password'],
    ["a backslash host switch", "https://evil.example\\@app.example.com/oauth", notAllowed],
    ["a backslash path escape", "https://app.example.com\\evil.example/oauth", notAllowed],
    ["an IDN look-alike host", "https://аpp.example.com/oauth", notAllowed],
    ["a look-alike suffix", "https://app.example.com.evil.example/oauth", notAllowed],
    ["a sibling path", "https://app.example.com/oauthx", notAllowed],
    ["a dot-dot climb", "https://app.example.com/oauth/../admin", notAllowed],
    ["an encoded dot-dot climb", "https://app.example.com/oauth/%2e%2e/admin", notAllowed],
    ["another port", "https://app.example.com:8443/oauth", notAllowed],
    ["plain http", "http://app.example.com/oauth", '"return_url" must be an https URL (http is allowed only for loopback hosts)'],
    ["a protocol-relative URL", "//evil.example/oauth", '"return_url" must be an absolute URL'],
  ])("return_url with %s", async (_label, returnUrl, message) => {
    await refused(() => initialise({ returnUrl }), message);
  });

  it("accepts an allowed return URL, normalised", async () => {
    const { url } = await initialise({ returnUrl: "https://APP.example.com/oauth/./done?x=1" });
    const state = new URL(url).searchParams.get("state")!;
    const { createHash } = await import("node:crypto");
    const stored = await stateCollection(broker.database.db, state).findOne({ _id: createHash("sha256").update(state).digest("base64url") as never });
    expect(stored?.return_url).toBe("https://app.example.com/oauth/done?x=1");
  });
});
