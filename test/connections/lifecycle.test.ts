import type { Duration } from "@bufbuild/protobuf/wkt";
import { type Client, Code } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ConnectionService, ConnectionStatus } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { SecretBox } from "../../src/crypto/secret-box.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { writeCatalog } from "../support/test-catalog.js";
import { countStates } from "../support/state-store.js";
import { connectionSecretContext } from "../../src/crypto/secret-contexts.js";

const RETURN_URL = "https://app.example.com/connected";
let broker: TestBroker;
let provider: ScriptedProvider;
let connections: Client<typeof ConnectionService>;

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  const docs = "https://example.com/docs";
  const endpoints = { authorize: `${provider.issuer}/authorize`, token: provider.tokenUrl, userinfo: provider.userinfoUrl };
  const catalog = writeCatalog([
    {
      // A provider whose "current user" endpoint nests the account (as Calendly's and Miro's do),
      // and whose token responses carry no expires_in for a documented 2-minute lifetime.
      id: "scripted-identity",
      display_name: "Scripted identity",
      category: "other",
      documentation_url: docs,
      endpoints,
      token: { default_expires_in: 120 },
      identity: { source: "userinfo", id: "data.id", email: "data.email", name: "data.name" },
      sources: { endpoints: docs, authorize: docs, token: docs, identity: docs },
    },
    {
      // A provider that names the account in the token response (as Slack's authed_user).
      id: "scripted-token-identity",
      display_name: "Scripted token-response identity",
      category: "other",
      documentation_url: docs,
      endpoints,
      identity: { source: "token_response", id: "authed_user.id" },
      sources: { endpoints: docs, authorize: docs, token: docs, identity: docs },
    },
  ]);
  broker = await startTestBroker({ BROKER_TOKEN_REQUEST_TIMEOUT: "1s", BROKER_REFRESH_RETRY_MIN: "100ms", BROKER_PROVIDERS_DIR: catalog });
  connections = broker.connect(ConnectionService);
  for (const organisationId of ["acme", "globex"]) {
    await broker.connect(OrganisationService).updateOrganisationSettings({
      settings: { organisationId, allowedReturnUrls: [RETURN_URL] },
      updateMask: { paths: ["allowed_return_urls"] },
    });
  }
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});

beforeEach(() => {
  provider.requests.length = 0;
  provider.refreshBehaviour = undefined;
  provider.refreshQueue = [];
  provider.userinfo = undefined;
});

let counter = 0;
/** The tokens the scripted provider issues next, distinct per call. */
function issue(expiresIn: number, extra: Record<string, unknown> = {}) {
  counter++;
  return { access_token: `lc-at-${counter}`, token_type: "Bearer", expires_in: expiresIn, refresh_token: `lc-rt-${counter}`, ...extra };
}
const unavailable = { kind: "raw", status: 503, contentType: "text/plain", body: "down for maintenance" } as const;

const stored = (id: string) => broker.database.db.collection("connections").findOne({ _id: id as never });
const unseal = (id: string, field: string, value: string) => new SecretBox(broker.config.encryptionKeys!).decrypt(value, connectionSecretContext(id, field));
const eventsOf = (id: string) =>
  broker.database.db
    .collection("events")
    .find({ connection_id: id })
    .sort({ _id: 1 })
    .toArray()
    .then((events) => events.map((event) => `${event.type}${event.status_reason ? `(${event.status_reason})` : ""}`));
const getToken = (connectionId: string, forceRefresh = false) => connections.getAccessToken({ organisationId: "acme", connectionId, forceRefresh });

function durationMs(duration: Duration | undefined): number {
  return duration === undefined ? Number.NaN : Number(duration.seconds) * 1000 + Math.round(duration.nanos / 1e6);
}

async function newConnection(expiresIn: number, credentialId?: string): Promise<{ id: string; credentialId: string; tokens: ReturnType<typeof issue> }> {
  const tokens = issue(expiresIn);
  provider.behaviour = { kind: "json", body: tokens };
  const credential = credentialId ?? (await createScriptedCredential(broker, provider, { issuer: provider.issuer }));
  const id = await connectThroughCallback(broker, credential);
  provider.requests.length = 0;
  return { id, credentialId: credential, tokens };
}

/**
 * Runs a flow to the callback and returns the callback's answer (not followed). With `openid`,
 * the provider's answer carries an ID token for `account` with the attempt's nonce.
 */
async function authorize(options: {
  credentialId: string;
  tokens: Record<string, unknown>;
  connectionId?: string;
  organisationId?: string;
  account?: Record<string, unknown>;
  endUserId?: string;
  returnUrl?: string;
}): Promise<Response> {
  const { url } = await connections.initialiseOAuth2Connection({
    organisationId: options.organisationId ?? "acme",
    connectorId: "scripted",
    credential: { id: options.credentialId, organisationId: options.organisationId ?? "acme" },
    authorizeUrl: "https://provider.example/authorize",
    clientId: "client-1",
    scopes: options.account === undefined ? ["read"] : ["openid", "read"],
    connectionId: options.connectionId ?? "",
    endUserId: options.endUserId ?? "",
    returnUrl: options.returnUrl ?? (options.endUserId === undefined ? "" : RETURN_URL),
  });
  const state = new URL(url).searchParams.get("state")!;
  const nonce = new URL(url).searchParams.get("nonce");
  recordSecrets(state);
  const body = { ...options.tokens };
  if (options.account !== undefined) body.id_token = await provider.idToken({ aud: "client-1", nonce, ...options.account });
  provider.behaviour = { kind: "json", body };
  return fetch(`${broker.httpUrl}/oauth2/callback?state=${state}&code=code-${state.slice(0, 8)}`, { redirect: "manual" });
}

describe("refresh backoff and recovery", () => {
  it("does not call a failing provider during the backoff, answers with RetryInfo, and recovers with one event", async () => {
    const { id } = await newConnection(1);
    const next = issue(3600);
    provider.refreshQueue = Array.from({ length: 5 }, () => unavailable);
    provider.refreshBehaviour = { kind: "json", body: next };

    const delays: number[] = [];
    let calls = 0;
    let accessToken: string | undefined;
    while (accessToken === undefined && calls < 500) {
      calls++;
      try {
        accessToken = (await getToken(id)).accessToken;
      } catch (error) {
        const failure = await connectError(Promise.reject(error));
        expect(failure.code).toBe(Code.Unavailable);
        expect(failure.rawMessage).toBe("refreshing the access token failed at the provider - try again later");
        delays.push(durationMs(failure.findDetails(RetryInfoSchema)[0]?.retryDelay));
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
    expect(accessToken).toBe(next.access_token);
    // Five failures and one success reached the provider; every other call was answered from the backoff.
    expect(provider.grants("refresh_token")).toHaveLength(6);
    // Calls kept coming during the backoffs and were answered from them: some during each of the
    // two longest (800 and 1600 ms). How many in all depends on how fast the machine makes calls.
    const failureAt = delays.flatMap((delay, i) => (i === 0 || delay > delays[i - 1]! ? [i] : []));
    const answeredDuring = failureAt.map((at, k) => (failureAt[k + 1] ?? delays.length) - at - 1);
    expect(answeredDuring[3]).toBeGreaterThan(0);
    expect(answeredDuring[4]).toBeGreaterThan(0);
    expect(delays.every((delay) => delay > 0 && delay <= 1600)).toBe(true);
    // The delays the failures announced double: 100, 200, 400, 800, 1600 ms.
    expect(delays.filter((delay, i) => i === 0 || delay > delays[i - 1]!)).toEqual([100, 200, 400, 800, 1600]);

    const document = await stored(id);
    expect(document).toMatchObject({ status: "ACTIVE" });
    expect(document!.refresh_failures).toBeUndefined();
    expect(document!.refresh_retry_time).toBeUndefined();
    await expect.poll(() => eventsOf(id), { timeout: 15_000 }).toEqual(["connection.created", "connection.refresh_failed(refresh_failed)", "connection.recovered"]);
  }, 30_000);

  it("hands out a still-valid token while backing off", async () => {
    const { id, tokens } = await newConnection(3600);
    provider.refreshQueue = [unavailable];
    // The caller's API call was refused: the forced refresh fails and the connection backs off.
    expect((await connectError(getToken(id, true))).code).toBe(Code.Unavailable);
    expect((await getToken(id)).accessToken).toBe(tokens.access_token);
    const forced = await connectError(getToken(id, true));
    expect(forced.code).toBe(Code.Unavailable);
    expect(forced.findDetails(RetryInfoSchema)).toHaveLength(1);
    expect(provider.grants("refresh_token")).toHaveLength(1);
  });

  it("gives up after BROKER_REFRESH_GIVE_UP of failures: NEEDS_REAUTHORIZATION (refresh_exhausted)", async () => {
    const shortBroker = await startTestBroker({ BROKER_REFRESH_RETRY_MIN: "100ms", BROKER_REFRESH_GIVE_UP: "1s" });
    try {
      const tokens = issue(1);
      provider.behaviour = { kind: "json", body: tokens };
      const id = await connectThroughCallback(shortBroker, await createScriptedCredential(shortBroker, provider));
      provider.requests.length = 0;
      provider.refreshBehaviour = unavailable;
      const client = shortBroker.connect(ConnectionService);
      const started = Date.now();
      let last = await connectError(client.getAccessToken({ organisationId: "acme", connectionId: id }));
      while (last.code === Code.Unavailable && Date.now() - started < 10_000) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        last = await connectError(client.getAccessToken({ organisationId: "acme", connectionId: id }));
      }
      expect(last.code).toBe(Code.FailedPrecondition);
      expect(last.rawMessage).toBe("the connection needs reauthorization (refresh_exhausted) so the end user must connect again");
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
      const { connection } = await client.getConnection({ organisationId: "acme", id });
      expect(connection).toMatchObject({ status: ConnectionStatus.NEEDS_REAUTHORIZATION, statusReason: "refresh_exhausted" });
      const failures = provider.grants("refresh_token").length;
      expect((await connectError(client.getAccessToken({ organisationId: "acme", connectionId: id }))).code).toBe(Code.FailedPrecondition);
      expect(provider.grants("refresh_token")).toHaveLength(failures);
      const events = shortBroker.database.db.collection("events");
      await expect
        .poll(async () => (await events.find({ connection_id: id }).sort({ _id: 1 }).toArray()).map((e) => `${e.type}:${e.status_reason ?? ""}`), {
          timeout: 15_000,
        })
        .toEqual(["connection.created:", "connection.refresh_failed:refresh_failed", "connection.needs_reauthorization:refresh_exhausted"]);
    } finally {
      await shortBroker.close();
    }
  }, 30_000);

  it("keeps the access token lifetime unset when the provider sends no expires_in and has no known default", async () => {
    const { id } = await newConnection(1);
    const { expires_in: _omitted, ...next } = issue(3600);
    provider.refreshBehaviour = { kind: "json", body: next };
    expect((await getToken(id)).expireTime).toBeUndefined();
    expect((await stored(id))!.expire_time).toBeUndefined();
  });
});

describe("a refresh whose outcome was lost (issue 11, item 12)", () => {
  it("regression: a refresh token spent by a timed-out refresh and then refused was reported as a plain invalid_grant", async () => {
    const { id, tokens } = await newConnection(1);
    // The provider takes longer than the broker waits (1 s): it may have rotated the token.
    provider.refreshQueue = [{ kind: "hang" }, { kind: "raw", status: 400, contentType: "application/json", body: '{"error":"invalid_grant"}' }];
    expect((await connectError(getToken(id))).code).toBe(Code.Unavailable);
    expect((await stored(id))!.refresh_sent_time).toBeInstanceOf(Date);

    await new Promise((resolve) => setTimeout(resolve, 150));
    const error = await connectError(getToken(id));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toBe("the connection needs reauthorization (refresh_token_reused) so the end user must connect again");
    // The stored refresh token was sent once more, and only once.
    expect(provider.grants("refresh_token").map((request) => request.form.get("refresh_token"))).toEqual([tokens.refresh_token, tokens.refresh_token]);
    expect(await stored(id)).toMatchObject({ status: "NEEDS_REAUTHORIZATION", status_reason: "refresh_token_reused" });
  });

  it("calls invalid_grant after a refresh that was answered (a 5xx) a plain invalid_grant", async () => {
    const { id } = await newConnection(1);
    provider.refreshQueue = [unavailable, { kind: "raw", status: 400, contentType: "application/json", body: '{"error":"invalid_grant"}' }];
    expect((await connectError(getToken(id))).code).toBe(Code.Unavailable);
    expect((await stored(id))!.refresh_sent_time).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect((await connectError(getToken(id))).rawMessage).toBe("the connection needs reauthorization (invalid_grant) so the end user must connect again");
  });
});

describe("force_refresh", () => {
  it("refreshes a token that has not expired, and at most once per 10 seconds", async () => {
    const { id, tokens } = await newConnection(3600);
    const next = issue(3600);
    provider.refreshBehaviour = { kind: "json", body: next, delayMs: 200 };
    const burst = await Promise.all(Array.from({ length: 10 }, () => getToken(id, true)));
    expect(new Set(burst.map((token) => token.accessToken))).toEqual(new Set([next.access_token]));
    expect(provider.grants("refresh_token")).toHaveLength(1);
    expect(provider.grants("refresh_token")[0]!.form.get("refresh_token")).toBe(tokens.refresh_token);
    // Within the window, forced callers get the token that refresh produced.
    provider.refreshBehaviour = { kind: "json", body: issue(3600) };
    expect((await getToken(id, true)).accessToken).toBe(next.access_token);
    expect(provider.grants("refresh_token")).toHaveLength(1);
  });

  it("puts a connection without a refresh token in NEEDS_REAUTHORIZATION: there is no other way to a new token", async () => {
    const { refresh_token: _none, ...tokens } = issue(3600);
    provider.behaviour = { kind: "json", body: tokens };
    const id = await connectThroughCallback(broker, await createScriptedCredential(broker, provider));
    const error = await connectError(getToken(id, true));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toBe("the connection needs reauthorization (no_refresh_token) so the end user must connect again");
  });
});

describe("reconnect (connection_id)", () => {
  it("keeps the ID, serves the old token until the callback, then replaces tokens and scopes and emits connection.reauthorized", async () => {
    const { id, credentialId, tokens } = await newConnection(1);
    // Broken: the provider revoked the grant.
    provider.refreshBehaviour = { kind: "raw", status: 400, contentType: "application/json", body: '{"error":"invalid_grant"}' };
    expect((await connectError(getToken(id))).code).toBe(Code.FailedPrecondition);

    const fresh = issue(3600, { scope: "read write" });
    const { url } = await connections.initialiseOAuth2Connection({
      organisationId: "acme",
      connectorId: "scripted",
      credential: { id: credentialId, organisationId: "acme" },
      authorizeUrl: "https://provider.example/authorize",
      clientId: "client-1",
      scopes: ["read", "write"],
      connectionId: id,
    });
    const state = new URL(url).searchParams.get("state")!;
    recordSecrets(state);
    // Until the callback the connection is as it was.
    expect(await stored(id)).toMatchObject({ status: "NEEDS_REAUTHORIZATION" });
    provider.behaviour = { kind: "json", body: fresh };
    const page = await fetch(`${broker.httpUrl}/oauth2/callback?state=${state}&code=again`);
    expect(page.status).toBe(200);

    expect((await getToken(id)).accessToken).toBe(fresh.access_token);
    const { connection } = await connections.getConnection({ organisationId: "acme", id });
    expect(connection).toMatchObject({ id, status: ConnectionStatus.ACTIVE, statusReason: "", scopes: ["read", "write"] });
    const document = await stored(id);
    expect(unseal(id, "refresh_token", document!.refresh_token)).toBe(fresh.refresh_token);
    expect(await broker.database.db.collection("connections").countDocuments({ credential_id: credentialId })).toBe(1);
    expect(tokens.access_token).not.toBe(fresh.access_token);
    await expect
      .poll(() => eventsOf(id), { timeout: 15_000 })
      .toEqual(["connection.created", "connection.needs_reauthorization(invalid_grant)", "connection.reauthorized"]);
  });

  it("keeps the old tokens working until the callback, and until ConfirmConnection with end_user_id", async () => {
    const { id, credentialId, tokens } = await newConnection(3600);
    const fresh = issue(3600);
    const response = await authorize({ credentialId, connectionId: id, tokens: fresh, endUserId: "user-42" });
    expect(response.status).toBe(303);
    const back = new URL(response.headers.get("location")!);
    expect(back.searchParams.get("connection_id")).toBe(id);
    const confirmation = back.searchParams.get("confirmation")!;
    recordSecrets(confirmation);
    // Held: the connection still serves its old token.
    expect((await getToken(id)).accessToken).toBe(tokens.access_token);
    expect((await connectError(connections.confirmConnection({ organisationId: "acme", connectionId: id, endUserId: "mallory", confirmation }))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await getToken(id)).accessToken).toBe(tokens.access_token);
    const confirmed = await connections.confirmConnection({ organisationId: "acme", connectionId: id, endUserId: "user-42", confirmation });
    expect(confirmed.connection).toMatchObject({ id, status: ConnectionStatus.ACTIVE });
    expect((await getToken(id)).accessToken).toBe(fresh.access_token);
    expect((await stored(id))!.reauthorization).toBeUndefined();
    await expect.poll(() => eventsOf(id), { timeout: 15_000 }).toEqual(["connection.created", "connection.reauthorized"]);
  });

  it("drops a held reconnect grant, with its tokens, when it is not confirmed within BROKER_STATE_TTL", async () => {
    const shortBroker = await startTestBroker({ BROKER_STATE_TTL: "10s", BROKER_IDLE_REFRESH_AFTER: "1h" });
    try {
      await shortBroker.connect(OrganisationService).updateOrganisationSettings({
        settings: { organisationId: "acme", allowedReturnUrls: [RETURN_URL] },
        updateMask: { paths: ["allowed_return_urls"] },
      });
      provider.behaviour = { kind: "json", body: issue(3600) };
      const credentialId = await createScriptedCredential(shortBroker, provider);
      const id = await connectThroughCallback(shortBroker, credentialId);
      const client = shortBroker.connect(ConnectionService);
      const { url } = await client.initialiseOAuth2Connection({
        organisationId: "acme",
        connectorId: "scripted",
        credential: { id: credentialId, organisationId: "acme" },
        authorizeUrl: "https://provider.example/authorize",
        clientId: "client-1",
        connectionId: id,
        endUserId: "user-7",
        returnUrl: RETURN_URL,
      });
      const state = new URL(url).searchParams.get("state")!;
      recordSecrets(state);
      provider.behaviour = { kind: "json", body: issue(3600) };
      const response = await fetch(`${shortBroker.httpUrl}/oauth2/callback?state=${state}&code=held`, { redirect: "manual" });
      const confirmation = new URL(response.headers.get("location")!).searchParams.get("confirmation")!;
      recordSecrets(confirmation);
      const connectionsCollection = shortBroker.database.db.collection("connections");
      expect((await connectionsCollection.findOne({ _id: id as never }))!.reauthorization.access_token).toBeDefined();

      await expect.poll(async () => (await connectionsCollection.findOne({ _id: id as never }))!.reauthorization, { timeout: 25_000, interval: 250 }).toBeUndefined();
      const late = await connectError(client.confirmConnection({ organisationId: "acme", connectionId: id, endUserId: "user-7", confirmation }));
      expect(late.code).toBe(Code.FailedPrecondition);
      expect(late.rawMessage).toBe("the connection is not waiting for confirmation");
      expect((await client.getConnection({ organisationId: "acme", id })).connection?.status).toBe(ConnectionStatus.ACTIVE);
    } finally {
      await shortBroker.close();
    }
  }, 45_000);

  it("refuses another provider account on the result page and with error=account_mismatch, changing nothing", async () => {
    const credentialId = await createScriptedCredential(broker, provider, { issuer: provider.issuer });
    const first = issue(3600);
    const created = await authorize({ credentialId, tokens: first, account: { sub: "alice-id", email: "alice@example.com" } });
    expect(created.status).toBe(200);
    const id = String((await broker.database.db.collection("connections").findOne({ credential_id: credentialId }))!._id);
    const before = await stored(id);

    const page = await authorize({ credentialId, connectionId: id, tokens: issue(3600), account: { sub: "bob-id" } });
    expect(page.status).toBe(409);
    expect(await page.text()).toContain("You signed in with a different account than the one this connection belongs to. Nothing was changed.");
    const redirected = await authorize({ credentialId, connectionId: id, tokens: issue(3600), account: { sub: "bob-id" }, returnUrl: RETURN_URL });
    expect(redirected.status).toBe(303);
    expect(new URL(redirected.headers.get("location")!).searchParams.get("error")).toBe("account_mismatch");

    const after = await stored(id);
    expect({ ...after, update_time: undefined, pending_events: undefined }).toEqual({ ...before, update_time: undefined, pending_events: undefined });
    expect((await getToken(id)).accessToken).toBe(first.access_token);
    expect((await connections.getConnection({ organisationId: "acme", id })).connection?.externalAccount).toMatchObject({
      id: "alice-id",
      email: "alice@example.com",
      name: "",
    });
  });

  it("records the account when the connection had none", async () => {
    const { id, credentialId } = await newConnection(3600);
    expect((await connections.getConnection({ organisationId: "acme", id })).connection?.externalAccount).toBeUndefined();
    const response = await authorize({ credentialId, connectionId: id, tokens: issue(3600), account: { sub: "carol-id", name: "Carol" } });
    expect(response.status).toBe(200);
    expect((await connections.getConnection({ organisationId: "acme", id })).connection?.externalAccount).toMatchObject({ id: "carol-id", email: "", name: "Carol" });
  });

  it("is refused across organisations (NOT_FOUND) and across credentials (FAILED_PRECONDITION)", async () => {
    const { id } = await newConnection(3600);
    const otherCredential = await createScriptedCredential(broker, provider);
    const request = {
      organisationId: "acme",
      connectorId: "scripted",
      credential: { id: otherCredential, organisationId: "acme" },
      authorizeUrl: "https://provider.example/authorize",
      clientId: "client-1",
      connectionId: id,
    };
    const crossCredential = await connectError(connections.initialiseOAuth2Connection(request));
    expect(crossCredential.code).toBe(Code.FailedPrecondition);
    expect(crossCredential.rawMessage).toBe('"connection_id" names a connection made with another credential');

    const globexCredential = await createScriptedCredential(broker, provider, { organisationId: "globex" });
    const crossOrganisation = await connectError(
      connections.initialiseOAuth2Connection({ ...request, organisationId: "globex", credential: { id: globexCredential, organisationId: "globex" } }),
    );
    expect(crossOrganisation.code).toBe(Code.NotFound);
    expect(crossOrganisation.rawMessage).toBe("connection not found");
    expect(await countStates(broker.database.db, { connection_id: id })).toBe(0);
  });
});

describe("external_account", () => {
  it("comes from the verified ID token: subject, email and name", async () => {
    const credentialId = await createScriptedCredential(broker, provider, { issuer: provider.issuer });
    const response = await authorize({ credentialId, tokens: issue(3600), account: { sub: "dave-id", email: "dave@example.com", name: "Dave" } });
    expect(response.status).toBe(200);
    const id = String((await broker.database.db.collection("connections").findOne({ credential_id: credentialId }))!._id);
    const { connection } = await connections.getConnection({ organisationId: "acme", id });
    expect(connection?.externalAccount).toMatchObject({ id: "dave-id", email: "dave@example.com", name: "Dave" });
  });

  it("comes from the credential's userinfo endpoint (OpenID Connect standard claims) when there is no ID token", async () => {
    const credentialId = await createScriptedCredential(broker, provider, { userinfoUrl: provider.userinfoUrl });
    provider.userinfo = { sub: "erin-id", email: "erin@example.com", name: "Erin" };
    const tokens = issue(3600);
    const response = await authorize({ credentialId, tokens });
    expect(response.status).toBe(200);
    const [call] = provider.requests.filter((request) => request.path === "/userinfo");
    expect(call!.authorization).toBe(`Bearer ${tokens.access_token}`);
    const id = String((await broker.database.db.collection("connections").findOne({ credential_id: credentialId }))!._id);
    expect((await connections.getConnection({ organisationId: "acme", id })).connection?.externalAccount).toMatchObject({
      id: "erin-id",
      email: "erin@example.com",
      name: "Erin",
    });
  });

  it("comes from where the provider catalog's identity says: a nested userinfo answer, or the token response", async () => {
    const { credential: userinfoCredential } = await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "acme", name: "Identity", clientId: "client-1", clientSecret: "scripted-client-secret", provider: "scripted-identity" },
    });
    provider.userinfo = { data: { id: 4711, email: "frank@example.com", name: "Frank" } };
    expect((await authorize({ credentialId: userinfoCredential!.id, tokens: issue(3600) })).status).toBe(200);
    const first = String((await broker.database.db.collection("connections").findOne({ credential_id: userinfoCredential!.id }))!._id);
    expect((await connections.getConnection({ organisationId: "acme", id: first })).connection?.externalAccount).toMatchObject({
      id: "4711",
      email: "frank@example.com",
      name: "Frank",
    });

    const { credential: tokenCredential } = await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "acme", name: "Token identity", clientId: "client-1", clientSecret: "scripted-client-secret", provider: "scripted-token-identity" },
    });
    expect((await authorize({ credentialId: tokenCredential!.id, tokens: issue(3600, { authed_user: { id: "U0GRACE" } }) })).status).toBe(200);
    const second = String((await broker.database.db.collection("connections").findOne({ credential_id: tokenCredential!.id }))!._id);
    expect((await connections.getConnection({ organisationId: "acme", id: second })).connection?.externalAccount).toMatchObject({
      id: "U0GRACE",
      email: "",
      name: "",
    });
  });

  it("is unset, and the connection made anyway, when the userinfo endpoint fails", async () => {
    const credentialId = await createScriptedCredential(broker, provider, { userinfoUrl: provider.userinfoUrl });
    provider.userinfo = undefined; // 404
    expect((await authorize({ credentialId, tokens: issue(3600) })).status).toBe(200);
    const id = String((await broker.database.db.collection("connections").findOne({ credential_id: credentialId }))!._id);
    expect((await connections.getConnection({ organisationId: "acme", id })).connection?.externalAccount).toBeUndefined();
  });
});

describe("a refresh answer without expires_in", () => {
  it("gets the provider's default lifetime where the catalog knows one", async () => {
    const { credential } = await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "acme", name: "Defaults", clientId: "client-1", clientSecret: "scripted-client-secret", provider: "scripted-identity" },
    });
    provider.userinfo = { data: { id: "g" } };
    expect((await authorize({ credentialId: credential!.id, tokens: issue(3600) })).status).toBe(200);
    const id = String((await broker.database.db.collection("connections").findOne({ credential_id: credential!.id }))!._id);
    const { expires_in: _omitted, ...next } = issue(3600);
    provider.refreshBehaviour = { kind: "json", body: next };
    const before = Date.now();
    const token = await getToken(id, true);
    expect(token.accessToken).toBe(next.access_token);
    const expiresAt = Number(token.expireTime!.seconds) * 1000;
    expect(expiresAt).toBeGreaterThanOrEqual(before + 119_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 121_000);
  });
});

describe("idle refresh by the provider's own rule", () => {
  it("refreshes connections of a provider whose refresh tokens lapse when unused after half that lifetime, and no others", async () => {
    const docs = "https://example.com/docs";
    const catalog = writeCatalog([
      {
        id: "scripted-lapsing",
        display_name: "Scripted lapsing",
        category: "other",
        documentation_url: docs,
        endpoints: { authorize: `${provider.issuer}/authorize`, token: provider.tokenUrl },
        // Unused refresh tokens lapse after 4 s (Box: 60 days; Atlassian: 90 days).
        token: { refresh_token_idle_lifetime: 4 },
        sources: { endpoints: docs, authorize: docs, token: docs },
      },
    ]);
    const idleBroker = await startTestBroker({ BROKER_PROVIDERS_DIR: catalog });
    try {
      const { credential } = await idleBroker.connect(CredentialService).createCredential({
        credential: { organisationId: "acme", name: "Lapsing", clientId: "client-1", clientSecret: "scripted-client-secret", provider: "scripted-lapsing" },
      });
      // Set before the connections exist: the lapsing one is due 2 s after it is made, which on a
      // loaded machine can come before the generic one is made.
      provider.requests.length = 0;
      provider.refreshBehaviour = { kind: "json", body: issue(3600) };
      const lapsing = issue(3600);
      provider.behaviour = { kind: "json", body: lapsing };
      const lapsingId = await connectThroughCallback(idleBroker, credential!.id);
      const generic = issue(3600);
      provider.behaviour = { kind: "json", body: generic };
      const genericId = await connectThroughCallback(idleBroker, await createScriptedCredential(idleBroker, provider));

      // Half of 4 s unused: refreshed (again 2 s after each refresh); the generic one (7 days by default) not at all.
      await expect.poll(() => provider.grants("refresh_token").length, { timeout: 15_000, interval: 100 }).toBeGreaterThanOrEqual(1);
      expect(provider.grants("refresh_token")[0]!.form.get("refresh_token")).toBe(lapsing.refresh_token);
      const connectionsCollection = idleBroker.database.db.collection("connections");
      // The outcome is written after the provider answered (the request alone is seen above).
      await expect.poll(async () => (await connectionsCollection.findOne({ _id: lapsingId as never }))!.refresh_time, { timeout: 15_000 }).toBeInstanceOf(Date);
      expect((await connectionsCollection.findOne({ _id: genericId as never }))!.refresh_time).toBeUndefined();
      expect(provider.grants("refresh_token").map((request) => request.form.get("refresh_token"))).not.toContain(generic.refresh_token);
    } finally {
      await idleBroker.close();
    }
  }, 30_000);
});
