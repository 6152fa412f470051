import { type Client, Code } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConnectionService, ConnectionStatus, RevocationOutcome } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SecretBox } from "../../src/crypto/secret-box.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { connectionSecretContext } from "../../src/crypto/secret-contexts.js";

let broker: TestBroker;
let provider: ScriptedProvider;
let connections: Client<typeof ConnectionService>;

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker({ BROKER_TOKEN_REQUEST_TIMEOUT: "1s", BROKER_REFRESH_RETRY_MIN: "400ms" });
  connections = broker.connect(ConnectionService);
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});

let counter = 0;
/** The tokens the scripted provider issues next, distinct per call. */
function issue(expiresIn: number, withRefresh = true) {
  counter++;
  return { access_token: `at-${counter}`, token_type: "Bearer", expires_in: expiresIn, ...(withRefresh ? { refresh_token: `rt-${counter}` } : {}) };
}

beforeEach(() => {
  provider.requests.length = 0;
  provider.refreshBehaviour = undefined;
  provider.revocationStatus = 200;
});

const stored = (id: string) => broker.database.db.collection("connections").findOne({ _id: id as never });
const unseal = (id: string, field: string, value: string) => new SecretBox(broker.config.encryptionKeys!).decrypt(value, connectionSecretContext(id, field));

function durationMs(duration: Duration | undefined): number {
  return duration === undefined ? Number.NaN : Number(duration.seconds) * 1000 + Math.round(duration.nanos / 1e6);
}

/** A connection whose access token expires in `expiresIn` seconds. */
async function newConnection(expiresIn: number, withRefresh = true): Promise<{ id: string; accessToken: string; refreshToken: string }> {
  const tokens = issue(expiresIn, withRefresh);
  provider.behaviour = { kind: "json", body: tokens };
  const id = await connectThroughCallback(broker, await createScriptedCredential(broker, provider));
  provider.requests.length = 0;
  return { id, accessToken: tokens.access_token, refreshToken: tokens.refresh_token ?? "" };
}

describe("GetAccessToken", () => {
  it("returns the stored token while it is valid, without calling the provider", async () => {
    const { id, accessToken } = await newConnection(3600);
    const response = await connections.getAccessToken({ organisationId: "acme", connectionId: id });
    expect(response.accessToken).toBe(accessToken);
    expect(response.tokenType).toBe("bearer");
    expect(Number(response.expireTime!.seconds) * 1000).toBeGreaterThan(Date.now() + 3500_000);
    expect(provider.requests).toHaveLength(0);
  });

  it("returns a token the provider said lives 1e300 s without refreshing (it was stored as an invalid date and answered INTERNAL)", async () => {
    const { id, accessToken } = await newConnection(1e300);
    const response = await connections.getAccessToken({ organisationId: "acme", connectionId: id });
    expect(response.accessToken).toBe(accessToken);
    const years = (Number(response.expireTime!.seconds) * 1000 - Date.now()) / (365 * 24 * 3600_000);
    expect(Math.round(years)).toBe(10);
    expect(provider.requests).toHaveLength(0);
  });

  it("refreshes a token inside the margin, and stores the rotated refresh token", async () => {
    const { id, refreshToken } = await newConnection(30); // inside the 60 s margin
    const next = issue(3600);
    provider.refreshBehaviour = { kind: "json", body: next };
    const response = await connections.getAccessToken({ organisationId: "acme", connectionId: id });
    expect(response.accessToken).toBe(next.access_token);

    const [request] = provider.grants("refresh_token");
    expect(provider.grants("refresh_token")).toHaveLength(1);
    expect(request!.form.get("refresh_token")).toBe(refreshToken);
    expect(request!.authorization).toMatch(/^Basic /);
    const document = await stored(id);
    expect(document!.status).toBe("ACTIVE");
    expect(unseal(id, "refresh_token", document!.refresh_token)).toBe(next.refresh_token);
    expect(unseal(id, "access_token", document!.access_token)).toBe(next.access_token);
    // And now it is fresh: no second refresh.
    expect((await connections.getAccessToken({ organisationId: "acme", connectionId: id })).accessToken).toBe(next.access_token);
    expect(provider.grants("refresh_token")).toHaveLength(1);
  });

  it("keeps the old refresh token when the provider sends no new one", async () => {
    const { id, refreshToken } = await newConnection(1);
    provider.refreshBehaviour = { kind: "json", body: issue(3600, false) };
    await connections.getAccessToken({ organisationId: "acme", connectionId: id });
    expect(unseal(id, "refresh_token", (await stored(id))!.refresh_token)).toBe(refreshToken);
  });

  it("sends one refresh request for 40 concurrent callers, who all get the new token", async () => {
    const { id } = await newConnection(1);
    const next = issue(3600);
    provider.refreshBehaviour = { kind: "json", body: next, delayMs: 300 };
    const tokens = await Promise.all(
      Array.from({ length: 40 }, () => connections.getAccessToken({ organisationId: "acme", connectionId: id })),
    );
    expect(new Set(tokens.map((t) => t.accessToken))).toEqual(new Set([next.access_token]));
    expect(provider.grants("refresh_token")).toHaveLength(1);
  });

  it("marks the connection NEEDS_REAUTHORIZATION on invalid_grant, and then refuses", async () => {
    const { id } = await newConnection(1);
    provider.refreshBehaviour = { kind: "raw", status: 400, contentType: "application/json", body: '{"error":"invalid_grant"}' };
    const error = await connectError(connections.getAccessToken({ organisationId: "acme", connectionId: id }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toBe("the connection needs reauthorization (invalid_grant) so the end user must connect again");
    const { connection } = await connections.getConnection({ organisationId: "acme", id });
    expect(connection).toMatchObject({ status: ConnectionStatus.NEEDS_REAUTHORIZATION, statusReason: "invalid_grant" });
    expect((await connectError(connections.getAccessToken({ organisationId: "acme", connectionId: id }))).code).toBe(Code.FailedPrecondition);
    expect(provider.grants("refresh_token")).toHaveLength(1);
  });

  it.each([
    ["a 500", { kind: "raw", status: 500, contentType: "text/plain", body: "down" }],
    ["no answer", { kind: "hang" }],
  ] as const)("marks REFRESH_FAILED on %s, keeps the refresh token, and retries after a backoff, not on the next call", async (_label, behaviour) => {
    const { id, refreshToken } = await newConnection(1);
    provider.refreshBehaviour = behaviour as never;
    const error = await connectError(connections.getAccessToken({ organisationId: "acme", connectionId: id }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toBe("refreshing the access token failed at the provider - try again later");
    // The first retry waits BROKER_REFRESH_RETRY_MIN.
    expect(durationMs(error.findDetails(RetryInfoSchema)[0]?.retryDelay)).toBe(400);

    // Within the backoff the provider is not asked again. Asked at once: the backoff is 400 ms,
    // and on a loaded machine the reads below can take a good part of that.
    const next = issue(3600);
    provider.refreshBehaviour = { kind: "json", body: next };
    const backingOff = await connectError(connections.getAccessToken({ organisationId: "acme", connectionId: id }));
    expect(backingOff.code).toBe(Code.Unavailable);
    expect(durationMs(backingOff.findDetails(RetryInfoSchema)[0]?.retryDelay)).toBeGreaterThan(0);
    expect(provider.grants("refresh_token")).toHaveLength(1);
    const failed = await stored(id);
    expect(failed).toMatchObject({ status: "REFRESH_FAILED", status_reason: "refresh_failed", refresh_failures: 1 });
    expect(unseal(id, "refresh_token", failed!.refresh_token)).toBe(refreshToken);

    await new Promise((resolve) => setTimeout(resolve, 450));
    expect((await connections.getAccessToken({ organisationId: "acme", connectionId: id })).accessToken).toBe(next.access_token);
    expect(provider.grants("refresh_token")).toHaveLength(2);
    expect((await connections.getConnection({ organisationId: "acme", id })).connection?.status).toBe(ConnectionStatus.ACTIVE);
  });

  it("refuses an expired token with no refresh token: the user must connect again", async () => {
    const { id } = await newConnection(1, false);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const error = await connectError(connections.getAccessToken({ organisationId: "acme", connectionId: id }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toContain("(no_refresh_token)");
  });

  it("is NOT_FOUND for another organisation's connection", async () => {
    const { id } = await newConnection(3600);
    expect((await connectError(connections.getAccessToken({ organisationId: "globex", connectionId: id }))).code).toBe(Code.NotFound);
    expect((await connectError(connections.getConnection({ organisationId: "globex", id }))).code).toBe(Code.NotFound);
  });
});

describe("refresh storms (issue 20, item 3)", () => {
  /** Calls GetAccessToken every 50 ms for `ms`, forced or not; the answers and errors in order. */
  async function callFor(id: string, ms: number, forceRefresh: boolean) {
    const answers: Array<{ accessToken: string; expireTime: number } | { code: Code; retryMs: number }> = [];
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((resolve) => setTimeout(resolve, 50))) {
      try {
        const token = await connections.getAccessToken({ organisationId: "acme", connectionId: id, forceRefresh });
        answers.push({ accessToken: token.accessToken, expireTime: Number(token.expireTime!.seconds) * 1000 });
      } catch (error) {
        const failure = await connectError(Promise.reject(error));
        answers.push({ code: failure.code, retryMs: durationMs(failure.findDetails(RetryInfoSchema)[0]?.retryDelay) });
      }
    }
    return answers;
  }

  it("regression: tokens living shorter than BROKER_TOKEN_MIN_VALIDITY were refreshed on every call (147 calls, 147 refreshes)", async () => {
    const { id } = await newConnection(30); // inside the 60 s margin from the start
    const next = issue(30);
    provider.refreshBehaviour = { kind: "json", body: next };
    // Twenty calls one after another, then twenty at once: well inside the 10 s the refreshed
    // token is fresh for, however slowly the machine makes them (a count of calls in 1.5 s
    // depended on that speed).
    const sequential: string[] = [];
    for (let i = 0; i < 20; i++) sequential.push((await connections.getAccessToken({ organisationId: "acme", connectionId: id })).accessToken);
    const concurrent = await Promise.all(Array.from({ length: 20 }, () => connections.getAccessToken({ organisationId: "acme", connectionId: id })));
    // The first call refreshes the callback's token; every later one gets the token it produced.
    expect(provider.grants("refresh_token")).toHaveLength(1);
    expect(new Set([...sequential, ...concurrent.map((token) => token.accessToken)])).toEqual(new Set([next.access_token]));
  });

  it("hands out a refreshed token for half its lifetime when that is under 10 s, so what it hands out has half its lifetime left", async () => {
    const { id } = await newConnection(4);
    provider.refreshBehaviour = { kind: "json", body: issue(4) };
    const answers = await callFor(id, 3_000, false);
    // A refresh at the start and one 2 s later (a 4 s token is fresh for 2 s), none in between.
    expect(provider.grants("refresh_token")).toHaveLength(2);
    expect(answers.every((answer) => "expireTime" in answer && answer.expireTime - Date.now() > 0)).toBe(true);
  });

  it("regression: forced calls on a connection in backoff reached the failing provider once per backoff step (4 in 10 s): once per 10 s", async () => {
    const { id, accessToken } = await newConnection(3600);
    provider.refreshBehaviour = { kind: "raw", status: 500, contentType: "text/plain", body: "down" };
    const forced = await callFor(id, 3_000, true);
    expect(provider.grants("refresh_token")).toHaveLength(1);
    expect(forced.every((answer) => "code" in answer && answer.code === Code.Unavailable)).toBe(true);
    // Each refusal says when a forced refresh may go again: the end of the 10 s window.
    const last = forced.at(-1) as { retryMs: number };
    expect(last.retryMs).toBeGreaterThan(6_000);
    expect(last.retryMs).toBeLessThanOrEqual(10_000);
    // The still-valid token is handed out meanwhile.
    expect((await connections.getAccessToken({ organisationId: "acme", connectionId: id })).accessToken).toBe(accessToken);
  });
});

describe("GetConnection and ListConnections", () => {
  it("return metadata, never tokens", async () => {
    const { id, accessToken, refreshToken } = await newConnection(3600);
    const { connection } = await connections.getConnection({ organisationId: "acme", id });
    expect(connection).toMatchObject({
      id,
      organisationId: "acme",
      connectorId: "scripted",
      status: ConnectionStatus.ACTIVE,
      statusReason: "",
      tokenType: "bearer",
      hasRefreshToken: true,
      scopes: ["read", "offline_access"],
    });
    const raw = await fetch(`${broker.httpUrl}/oauth2broker.v1.ConnectionService/ListConnections`, {
      method: "POST",
      headers: { authorization: `Bearer ${broker.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ organisationId: "acme" }),
    });
    const text = await raw.text();
    expect(text).toContain(id);
    for (const secret of [accessToken, refreshToken]) expect(text).not.toContain(secret);
  });

  it("lists newest first, filters, and pages", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    provider.behaviour = { kind: "json", body: issue(3600) };
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await connectThroughCallback(broker, credentialId, i % 2 === 0 ? "even" : "odd"));
    const all = await connections.listConnections({ organisationId: "acme", credentialId });
    expect(all.connections.map((c) => c.id)).toEqual([...ids].reverse());
    const even = await connections.listConnections({ organisationId: "acme", credentialId, connectorId: "even" });
    expect(even.connections.map((c) => c.id)).toEqual([ids[4], ids[2], ids[0]]);
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await connections.listConnections({ organisationId: "acme", credentialId, pageSize: 2, pageToken });
      seen.push(...page.connections.map((c) => c.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual([...ids].reverse());
    const active = await connections.listConnections({ organisationId: "acme", credentialId, status: ConnectionStatus.NEEDS_REAUTHORIZATION });
    expect(active.connections).toEqual([]);
    expect((await connections.listConnections({ organisationId: "other" })).connections).toEqual([]);
  });
});

describe("DeleteConnection", () => {
  it("revokes the refresh token at the revocation endpoint (RFC 7009), then deletes", async () => {
    const { id, refreshToken } = await newConnection(3600);
    const response = await connections.deleteConnection({ organisationId: "acme", id, revoke: true });
    expect(response.revocation).toBe(RevocationOutcome.REVOKED);
    const [request] = provider.requests.filter((r) => r.path === "/revoke");
    expect(request!.form.get("token")).toBe(refreshToken);
    expect(request!.form.get("token_type_hint")).toBe("refresh_token");
    expect(request!.authorization).toMatch(/^Basic /);
    expect((await connectError(connections.getConnection({ organisationId: "acme", id }))).code).toBe(Code.NotFound);
    expect((await connectError(connections.getAccessToken({ organisationId: "acme", connectionId: id }))).code).toBe(Code.NotFound);
    // The tokens are gone at once; the document follows once its event is published.
    const document = await stored(id);
    expect(document?.access_token).toBeUndefined();
    await expect.poll(() => stored(id), { timeout: 15_000 }).toBeNull();
  });

  it("reports a failed revocation and deletes anyway, unless asked to keep the connection", async () => {
    provider.revocationStatus = 400;
    const kept = await newConnection(3600);
    const error = await connectError(connections.deleteConnection({ organisationId: "acme", id: kept.id, revoke: true, keepIfRevocationFails: true }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toBe("revocation failed (unsupported_token_type) and the connection was kept");
    expect((await connections.getConnection({ organisationId: "acme", id: kept.id })).connection?.status).toBe(ConnectionStatus.ACTIVE);

    const response = await connections.deleteConnection({ organisationId: "acme", id: kept.id, revoke: true });
    expect(response).toMatchObject({ revocation: RevocationOutcome.FAILED, revocationError: "unsupported_token_type" });
    expect((await connectError(connections.getConnection({ organisationId: "acme", id: kept.id }))).code).toBe(Code.NotFound);
  });

  it("says NOT_SUPPORTED for a credential without a revocation URL, and skips revocation when not asked", async () => {
    provider.behaviour = { kind: "json", body: issue(3600) };
    const credentialId = await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "acme", name: "No revocation", clientId: "client-1", clientSecret: "s", tokenUrl: provider.tokenUrl },
    });
    const id = await connectThroughCallback(broker, credentialId.credential!.id);
    expect((await connections.deleteConnection({ organisationId: "acme", id, revoke: true })).revocation).toBe(RevocationOutcome.NOT_SUPPORTED);
    const other = await newConnection(3600);
    expect((await connections.deleteConnection({ organisationId: "acme", id: other.id })).revocation).toBe(RevocationOutcome.UNSPECIFIED);
    expect(provider.requests.filter((r) => r.path === "/revoke")).toHaveLength(0);
  });

  it("is NOT_FOUND for another organisation's connection, and leaves it alone", async () => {
    const { id } = await newConnection(3600);
    expect((await connectError(connections.deleteConnection({ organisationId: "globex", id }))).code).toBe(Code.NotFound);
    expect((await connections.getConnection({ organisationId: "acme", id })).connection?.id).toBe(id);
  });
});

describe("logs", () => {
  it("hold no access or refresh token", async () => {
    const text = JSON.stringify(broker.logs);
    expect(broker.logs.some((line) => line.outcome === "refreshed")).toBe(true);
    for (let i = 1; i <= counter; i++) {
      expect(text).not.toContain(`"at-${i}"`);
      expect(text).not.toContain(`rt-${i}"`);
    }
  });
});
