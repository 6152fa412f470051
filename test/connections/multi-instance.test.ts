import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { generateEncryptionKey } from "../../src/crypto/secret-box.js";
import type { ConnectionDocument } from "../../src/store/connections.js";
import { connectDatabase, type Database } from "../../src/store/database.js";
import { freePort } from "../../src/store/embedded-ferretdb.js";
import { type BrokerProcess, startBrokerProcess } from "../support/broker-process.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { bearer, grpc, grpcJsClients, unary } from "../support/grpc-js.js";
import { processHandle } from "../support/process-handle.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

/** Several broker processes on one database, as in production behind a load balancer. */
let provider: ScriptedProvider;
let database: Database;
let env: Record<string, string>;
const running: BrokerProcess[] = [];

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  const databaseName = `test_${randomUUID().replaceAll("-", "")}`;
  database = await connectDatabase(inject("mongodbUri"), databaseName);
  env = {
    MONGODB_URI: inject("mongodbUri"),
    MONGODB_DATABASE: databaseName,
    BROKER_ADMIN_TOKEN: randomBytes(32).toString("base64url"),
    BROKER_ENCRYPTION_KEYS: generateEncryptionKey("shared1"),
    BROKER_TOKEN_REQUEST_TIMEOUT: "2s",
    BROKER_WEBHOOK_RETRY_MIN: "200ms",
    BROKER_LOG_LEVEL: "info",
    BROKER_OUTBOUND_ALLOWLIST: "127.0.0.1",
    BROKER_CALLBACK_RATE_LIMIT: "100000",
    BROKER_RPC_RATE_LIMIT: "100000",
  };
});
afterAll(async () => {
  await Promise.all(running.map((broker) => broker.kill()));
  await database.client.close();
  await provider.close();
});

async function start(): Promise<BrokerProcess> {
  const port = await freePort();
  const broker = await startBrokerProcess({ ...env, BROKER_HTTP_PORT: String(port), BROKER_PUBLIC_URL: `http://127.0.0.1:${port}` });
  running.push(broker);
  return broker;
}

let counter = 0;
function issue(expiresIn: number) {
  counter++;
  return { access_token: `mi-at-${counter}`, token_type: "Bearer", expires_in: expiresIn, refresh_token: `mi-rt-${counter}` };
}

async function expiredConnection(on: BrokerProcess): Promise<string> {
  provider.behaviour = { kind: "json", body: issue(1) };
  const handle = processHandle(on, database);
  return connectThroughCallback(handle, await createScriptedCredential(handle, provider));
}

function getAccessToken(broker: BrokerProcess, connectionId: string) {
  const clients = grpcJsClients(broker.grpcPort);
  return unary(clients.connections, "GetAccessToken", { organisation_id: "acme", connection_id: connectionId }, bearer(broker.adminToken)).finally(() =>
    clients.close(),
  );
}

describe("two broker processes on one database", () => {
  it("complete a flow initialised on one instance when the callback lands on the other", async () => {
    const [a, b] = await Promise.all([start(), start()]);
    provider.behaviour = { kind: "json", body: issue(3600) };
    const handleA = processHandle(a!, database);
    const credentialId = await createScriptedCredential(handleA, provider);
    const { url } = await handleA.connect(ConnectionService).initialiseOAuth2Connection({
      organisationId: "acme",
      connectorId: "cross",
      credential: { id: credentialId, organisationId: "acme" },
      authorizeUrl: "https://idp.example/authorize",
      clientId: "client-1",
    });
    const state = new URL(url).searchParams.get("state")!;
    provider.requests.length = 0;
    const page = await fetch(`http://127.0.0.1:${b!.httpPort}/oauth2/callback?state=${state}&code=cross-code`);
    expect(page.status).toBe(200);
    // B exchanged the code with the redirect URI A put in the URL, as RFC 6749 §4.1.3 requires.
    expect(provider.grants("authorization_code")[0]!.form.get("redirect_uri")).toBe(`http://127.0.0.1:${a!.httpPort}/oauth2/callback`);
    const { connections } = await processHandle(b!, database).connect(ConnectionService).listConnections({ organisationId: "acme", connectorId: "cross" });
    expect(connections).toHaveLength(1);
    // And the state is gone for both.
    expect((await fetch(`http://127.0.0.1:${a!.httpPort}/oauth2/callback?state=${state}&code=again`)).status).toBe(400);
  }, 60_000);

  it("send exactly one refresh request for 50 concurrent GetAccessToken calls split across them", async () => {
    const [a, b] = await Promise.all([start(), start()]);
    const id = await expiredConnection(a!);
    provider.requests.length = 0;
    const next = issue(3600);
    provider.refreshBehaviour = { kind: "json", body: next, delayMs: 500 };

    const clients = [grpcJsClients(a!.grpcPort), grpcJsClients(b!.grpcPort)];
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        unary(clients[i % 2]!.connections, "GetAccessToken", { organisation_id: "acme", connection_id: id }, bearer(env.BROKER_ADMIN_TOKEN!)),
      ),
    );
    for (const client of clients) client.close();
    expect(results.map((r) => r.error?.message)).toEqual(Array(50).fill(undefined));
    expect(new Set(results.map((r) => r.response.access_token))).toEqual(new Set([next.access_token]));
    expect(provider.grants("refresh_token")).toHaveLength(1);
  }, 60_000);

  it("send exactly one client credentials request to renew a token for 40 concurrent GetAccessToken calls split across them", async () => {
    const [a, b] = await Promise.all([start(), start()]);
    const handleA = processHandle(a!, database);
    const credentialId = await createScriptedCredential(handleA, provider);
    // Issued with 1 s left: inside the 60 s margin, so the next caller renews it.
    provider.behaviour = { kind: "json", body: { access_token: `mi-cc-${++counter}`, token_type: "Bearer", expires_in: 1 } };
    const { connection } = await handleA.connect(ConnectionService).createConnection({
      organisationId: "acme",
      connectorId: "service",
      kind: { case: "clientCredentials", value: { credential: { id: credentialId, organisationId: "acme" }, scopes: ["read"] } },
    });
    provider.requests.length = 0;
    const renewed = `mi-cc-${++counter}`;
    provider.behaviour = { kind: "json", body: { access_token: renewed, token_type: "Bearer", expires_in: 3600 }, delayMs: 500 };

    const clients = [grpcJsClients(a!.grpcPort), grpcJsClients(b!.grpcPort)];
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        unary(clients[i % 2]!.connections, "GetAccessToken", { organisation_id: "acme", connection_id: connection!.id }, bearer(env.BROKER_ADMIN_TOKEN!)),
      ),
    );
    for (const client of clients) client.close();
    expect(results.map((r) => r.error?.message)).toEqual(Array(40).fill(undefined));
    expect(new Set(results.map((r) => r.response.access_token))).toEqual(new Set([renewed]));
    expect(provider.grants("client_credentials")).toHaveLength(1);
    expect(provider.grants("refresh_token")).toHaveLength(0);
  }, 60_000);

  it.each([
    ["accepts it (no reuse detection)", false],
    ["refuses it (reuse detection)", true],
  ] as const)(
    "let the next caller take over when the lease holder is killed mid-refresh: it resends the stored refresh token once, and the provider %s",
    async (_label, reuseDetection) => {
      const holder = await start();
      const other = await start();
      const id = await expiredConnection(holder);
      const refreshToken = `mi-rt-${counter}`;
      provider.requests.length = 0;
      provider.refreshBehaviour = { kind: "hang" };
      void getAccessToken(holder, id);
      await expect.poll(() => provider.grants("refresh_token").length, { timeout: 10_000 }).toBe(1);
      // The refresh was recorded as sent before it was sent.
      expect((await database.db.collection("connections").findOne({ _id: id as never }))!.refresh_sent_time).toBeInstanceOf(Date);
      await holder.kill();

      const next = issue(3600);
      provider.refreshBehaviour = reuseDetection
        ? { kind: "raw", status: 400, contentType: "application/json", body: '{"error":"invalid_grant"}' }
        : { kind: "json", body: next };
      const started = Date.now();
      const { response, error } = await getAccessToken(other, id);
      // It waited for the dead holder's lease (2 s timeout + 5 s) to expire, then refreshed itself.
      expect(Date.now() - started).toBeGreaterThan(2_000);
      // The outcome of the first request is unknown: the stored token is sent once more, no more.
      expect(provider.grants("refresh_token").map((request) => request.form.get("refresh_token"))).toEqual([refreshToken, refreshToken]);
      const stored = await database.db.collection("connections").findOne({ _id: id as never });
      if (reuseDetection) {
        expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
        expect(error?.details).toBe("the connection needs reauthorization (refresh_token_reused) so the end user must connect again");
        expect(stored).toMatchObject({ status: "NEEDS_REAUTHORIZATION", status_reason: "refresh_token_reused" });
      } else {
        expect(error).toBeUndefined();
        expect(response.access_token).toBe(next.access_token);
        expect(stored!.refresh_sent_time).toBeUndefined();
      }
    },
    60_000,
  );

  it("share one forced refresh among 30 concurrent force_refresh calls split across them, and none for a second burst within 10 s", async () => {
    const [a, b] = await Promise.all([start(), start()]);
    provider.behaviour = { kind: "json", body: issue(3600) };
    const handle = processHandle(a!, database);
    const id = await connectThroughCallback(handle, await createScriptedCredential(handle, provider));
    provider.requests.length = 0;
    const next = issue(3600);
    provider.refreshBehaviour = { kind: "json", body: next, delayMs: 500 };

    const clients = [grpcJsClients(a!.grpcPort), grpcJsClients(b!.grpcPort)];
    const burst = () =>
      Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          unary(clients[i % 2]!.connections, "GetAccessToken", { organisation_id: "acme", connection_id: id, force_refresh: true }, bearer(env.BROKER_ADMIN_TOKEN!)),
        ),
      );
    try {
      const first = await burst();
      expect(first.map((r) => r.error?.message)).toEqual(Array(30).fill(undefined));
      expect(new Set(first.map((r) => r.response.access_token))).toEqual(new Set([next.access_token]));
      expect(provider.grants("refresh_token")).toHaveLength(1);

      provider.refreshBehaviour = { kind: "json", body: issue(3600) };
      const second = await burst();
      expect(new Set(second.map((r) => r.response.access_token))).toEqual(new Set([next.access_token]));
      expect(provider.grants("refresh_token")).toHaveLength(1);
    } finally {
      for (const client of clients) client.close();
    }
  }, 60_000);

  it("refresh exactly the idle connections in the background, once each, with two instances running", async () => {
    const idleDatabase = `test_${randomUUID().replaceAll("-", "")}`;
    const idleEnv = { MONGODB_DATABASE: idleDatabase, BROKER_IDLE_REFRESH_AFTER: "6s" };
    const startIdle = async () => {
      const port = await freePort();
      const broker = await startBrokerProcess({ ...env, ...idleEnv, BROKER_HTTP_PORT: String(port), BROKER_PUBLIC_URL: `http://127.0.0.1:${port}` });
      running.push(broker);
      return broker;
    };
    const [a] = await Promise.all([startIdle(), startIdle()]);
    const idle = await connectDatabase(inject("mongodbUri"), idleDatabase);
    try {
      const handle = processHandle(a!, idle);
      const credentialId = await createScriptedCredential(handle, provider);
      const next = issue(3600);
      provider.refreshBehaviour = { kind: "json", body: next };
      provider.requests.length = 0;
      const stored = () => idle.db.collection<ConnectionDocument>("connections");
      const connect = async () => {
        const tokens = issue(3600);
        provider.behaviour = { kind: "json", body: tokens };
        const id = await connectThroughCallback(handle, credentialId);
        // The time the idle scan counts from, read before any refresh could change it.
        const document = (await stored().findOne({ _id: id }))!;
        return { id, refreshToken: tokens.refresh_token, lastUsed: (document.refresh_token_time ?? document.create_time).getTime() };
      };
      const idleOnes = [await connect(), await connect(), await connect()];
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      const recentOnes = [await connect(), await connect()];

      // The first three pass 6 s unused first, the other two 3.5 s later. Each is refreshed once
      // (the refresh token it was connected with is sent once), and none before it was unused for
      // 6 s: checked by the time each request reached the provider, which a slow machine can only
      // make later (a check at a fixed moment between the two groups' 6 s once came too late).
      const connected = new Map([...idleOnes, ...recentOnes].map((c) => [c.refreshToken, c.lastUsed]));
      const sent = () => provider.grants("refresh_token").filter((request) => connected.has(request.form.get("refresh_token")!));
      await expect.poll(() => sent().length, { timeout: 30_000, interval: 100 }).toBe(5);
      expect(sent().map((request) => request.form.get("refresh_token")).toSorted()).toEqual([...connected.keys()].toSorted());
      for (const request of sent()) expect(request.time - connected.get(request.form.get("refresh_token")!)!).toBeGreaterThanOrEqual(6_000);
    } finally {
      await idle.client.close();
    }
  }, 60_000);

  it("deliver a webhook after a restart when the broker was killed before delivering it", async () => {
    const received: string[] = [];
    let accepting = false;
    const receiver: Server = createServer((req, res) => {
      if (!accepting) return void res.writeHead(503).end();
      received.push(String(req.headers["webhook-id"]));
      // 204 on purpose. Regression: a body-less 2xx once failed every delivery.
      res.writeHead(204).end();
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    try {
      const first = await start();
      const handle = processHandle(first, database);
      await handle.connect(OrganisationService).updateOrganisationSettings({
        settings: { organisationId: "acme", webhookUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks` },
        updateMask: { paths: ["webhook_url"] },
      });
      await handle.connect(OrganisationService).rotateWebhookSecret({ organisationId: "acme" });
      provider.behaviour = { kind: "json", body: issue(3600) };
      const id = await connectThroughCallback(handle, await createScriptedCredential(handle, provider));
      const events = database.db.collection("events");
      // Failed attempts are recorded on the delivery's copy in `webhook_deliveries`; `events` gets the outcome.
      const deliveries = database.db.collection("webhook_deliveries");
      await expect
        .poll(async () => (await deliveries.findOne({ connection_id: id, type: "connection.created" }))?.attempts ?? 0, { timeout: 20_000 })
        .toBeGreaterThan(0);
      await first.kill();

      accepting = true;
      await start();
      const event = await events.findOne({ connection_id: id, type: "connection.created" });
      // A kill during a retry leaves that attempt's 30 s event lease behind (webhook-delivery.ts):
      // the restarted broker delivers once it lapses, so the wait covers the lease.
      await expect.poll(() => received.includes(String(event!._id)), { timeout: 40_000 }).toBe(true);
      await expect.poll(async () => (await events.findOne({ _id: event!._id }))?.delivery, { timeout: 15_000 }).toBe("delivered");
    } finally {
      receiver.closeAllConnections();
      receiver.close();
    }
  }, 90_000);
});
