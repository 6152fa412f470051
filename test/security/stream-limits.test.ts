import http2 from "node:http2";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ApiKeyService } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

let broker: TestBroker;
let provider: ScriptedProvider;
const open: AbortController[] = [];

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  provider.behaviour = { kind: "json", body: { access_token: "watch-at", token_type: "bearer", expires_in: 3600 } };
  broker = await startTestBroker({ BROKER_MAX_STREAMS_PER_CALLER: "12" });
});
afterAll(async () => {
  for (const controller of open) controller.abort();
  await broker.close();
  await provider.close();
});

async function newKey(b: TestBroker, organisationId: string, expireTime?: Date): Promise<{ key: string; id: string }> {
  const { key, apiKey } = await b.connect(ApiKeyService).createApiKey({
    name: `${organisationId} watcher`,
    organisationId,
    expireTime: expireTime && timestampFromDate(expireTime),
  });
  recordSecrets(key);
  return { key, id: apiKey!.id };
}

/** A stream being read in the background: what it yielded, and how it ended. */
interface Reading<T> {
  messages: T[];
  ended: Promise<ConnectError | "ok">;
}

function read<T>(stream: (signal: AbortSignal) => AsyncIterable<T>): Reading<T> {
  const controller = new AbortController();
  open.push(controller);
  const messages: T[] = [];
  const ended = (async () => {
    try {
      for await (const message of stream(controller.signal)) messages.push(message);
      return "ok" as const;
    } catch (error) {
      return ConnectError.from(error);
    }
  })();
  return { messages, ended };
}

function watchEvents(b: TestBroker, key: string, organisationId = "acme") {
  return read((signal) => b.grpc(ConnectionService, key).watchConnectionEvents({ organisationId }, { signal }));
}

/** Resolves "open" when the stream is still open after `ms`. */
function stillOpenAfter(reading: Reading<unknown>, ms = 500): Promise<ConnectError | "ok" | "open"> {
  return Promise.race([reading.ended, new Promise<"open">((resolve) => setTimeout(() => resolve("open"), ms))]);
}

/** The event feed's poll interval (WATCH_INTERVAL_MS in src/server.ts). */
const WATCH_INTERVAL_MS = 250;
/** Window collections one feed poll reads at most: it reads back 60 s and ahead 60 s, over 60 s windows (see RecentEventStore). */
const WINDOWS_PER_POLL = 3;

function eventFinds(b: TestBroker): Promise<number> {
  return b.metrics.dbCommands.get().then(
    (metric) =>
      metric.values.find(
        (value) =>
          value.metricName === "broker_db_command_duration_seconds_count" &&
          value.labels.command === "find" &&
          // The feed polls the recent-event windows, one metrics collection (see RecentEventStore).
          value.labels.collection === "events_recent" &&
          value.labels.outcome === "ok",
      )?.value ?? 0,
  );
}

describe("stream limits", () => {
  it("refuse a caller's streams beyond BROKER_MAX_STREAMS_PER_CALLER, and leave other tenants' alone", async () => {
    const acme = await newKey(broker, "acme");
    const globex = await newKey(broker, "globex");
    const watching = Array.from({ length: 12 }, () => watchEvents(broker, acme.key));
    for (const reading of watching) expect(await stillOpenAfter(reading, 0)).toBe("open");
    const refused = await watchEvents(broker, acme.key).ended;
    expect(refused).toMatchObject({ code: Code.ResourceExhausted, rawMessage: "too many open streams for this caller - close one first" });
    // Another organisation's key still streams, and its unary calls still work.
    expect(await stillOpenAfter(watchEvents(broker, globex.key, "globex"))).toBe("open");
    expect((await broker.grpc(CredentialService, globex.key).listCredentials({ organisationId: "globex" })).credentials).toEqual([]);
    // The twelve open streams all get the organisation's next event.
    const credentialId = await createScriptedCredential(broker, provider);
    const connectionId = await connectThroughCallback(broker, credentialId);
    for (const reading of watching) {
      await expect.poll(() => reading.messages.map((m) => m.event?.connectionId), { timeout: 10_000 }).toContain(connectionId);
    }
  });

  it("limit the unauthenticated Health/Watch per client address", async () => {
    const watching = Array.from({ length: 12 }, () => read((signal) => broker.grpc(Health, null).watch({ service: "" }, { signal })));
    for (const reading of watching) await expect.poll(() => reading.messages.length, { timeout: 10_000 }).toBe(1);
    const refused = await read((signal) => broker.grpc(Health, null).watch({ service: "" }, { signal })).ended;
    expect(refused).toMatchObject({ code: Code.ResourceExhausted, rawMessage: "too many open streams for this caller - close one first" });
  });

  it("regression: every watcher of an organisation polled the database itself; one shared poll serves them", async () => {
    // A broker of its own, so that every feed find it counts is this organisation's (the other
    // tests leave their watchers open, and their organisations' polls run too).
    const own = await startTestBroker({ BROKER_MAX_STREAMS_PER_CALLER: "12" });
    const ownStreams = open.length;
    try {
      const { key } = await newKey(own, "initech");
      const first = watchEvents(own, key, "initech");
      expect(await stillOpenAfter(first, 1_000)).toBe("open");
      // The watcher's poll runs: a find in each of 2 or 3 window collections per poll.
      const alone = await eventFinds(own);
      await expect.poll(async () => (await eventFinds(own)) - alone, { timeout: 15_000 }).toBeGreaterThanOrEqual(8);
      for (let i = 0; i < 11; i++) watchEvents(own, key, "initech");
      await new Promise((resolve) => setTimeout(resolve, 500));
      const started = Date.now();
      const before = await eventFinds(own);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const together = (await eventFinds(own)) - before;
      const elapsed = Date.now() - started;
      // One shared poll waits 250 ms after each poll, so however slowly the machine runs it makes
      // at most one poll per 250 ms of the measured time, plus one (about 8 polls in 2 s, 16-24
      // finds). Twelve polls of their own would make about twelve times as many.
      expect(together).toBeGreaterThanOrEqual(2);
      expect(together).toBeLessThanOrEqual(WINDOWS_PER_POLL * (Math.floor(elapsed / WATCH_INTERVAL_MS) + 1));
    } finally {
      // Closed first: the broker's shutdown waits for open streams.
      for (const controller of open.splice(ownStreams)) controller.abort();
      await own.close();
    }
  });

  it("advertise at most 100 streams and 16 KiB of headers per HTTP/2 connection, and refuse larger headers", async () => {
    const session = http2.connect(broker.grpcUrl);
    try {
      const settings = await new Promise<http2.Settings>((resolve) => session.once("remoteSettings", resolve));
      expect(settings).toMatchObject({ maxConcurrentStreams: 100, maxHeaderListSize: 16 * 1024 });
    } finally {
      session.close();
    }
    // Regression: 60 KB of metadata was accepted while the README said 16 KiB.
    const call = broker.grpc(CredentialService).listCredentials({ organisationId: "acme" }, { headers: { "x-padding": "a".repeat(20 * 1024) } });
    expect(await connectError(call)).toMatchObject({ code: Code.ResourceExhausted, rawMessage: "request headers too large" });
    const padded = { headers: { "x-padding": "a".repeat(8 * 1024) } };
    expect((await broker.grpc(CredentialService).listCredentials({ organisationId: "nobody" }, padded)).credentials).toEqual([]);
  });
});

describe("stream lifetime and credentials", () => {
  let short: TestBroker;
  beforeAll(async () => {
    short = await startTestBroker({ BROKER_STREAM_MAX_LIFETIME: "3s" });
  });
  afterAll(() => short.close());

  it("end a stream after BROKER_STREAM_MAX_LIFETIME with UNAVAILABLE, which clients re-open", async () => {
    const started = Date.now();
    const health = read((signal) => short.grpc(Health, null).watch({ service: "" }, { signal }));
    const events = watchEvents(short, short.adminToken);
    for (const ended of [await health.ended, await events.ended]) {
      expect(ended).toMatchObject({ code: Code.Unavailable, rawMessage: "the stream reached its maximum lifetime - open it again" });
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_900);
    expect(health.messages.length).toBe(1);
    expect(await stillOpenAfter(watchEvents(short, short.adminToken))).toBe("open");
  });

  // On the broker whose streams live an hour: on the 3 s one, a credential check (every 2 s)
  // that load delays loses the race to the lifetime, and the stream ends UNAVAILABLE instead.
  it("regression: a stream whose API key is revoked ends with UNAUTHENTICATED", async () => {
    const { key, id } = await newKey(broker, "acme");
    const watching = watchEvents(broker, key);
    expect(await stillOpenAfter(watching)).toBe("open");
    await broker.connect(ApiKeyService).revokeApiKey({ id });
    const ended = await Promise.race([watching.ended, new Promise((resolve) => setTimeout(() => resolve("still open"), 10_000))]);
    expect(ended).toMatchObject({ code: Code.Unauthenticated, rawMessage: "the credential is no longer valid" });
  });

  it("regression: a stream whose API key expires ends with UNAUTHENTICATED", async () => {
    // Two seconds, so the stream opens before the key expires however slowly the call is made.
    const { key } = await newKey(broker, "acme", new Date(Date.now() + 2_000));
    const watching = watchEvents(broker, key);
    const ended = await Promise.race([watching.ended, new Promise((resolve) => setTimeout(() => resolve("still open"), 10_000))]);
    expect(ended).toMatchObject({ code: Code.Unauthenticated, rawMessage: "the credential is no longer valid" });
  });
});

describe("shutdown", () => {
  it("regression: open WatchConnectionEvents streams held a closing broker for its whole grace period; they now end with UNAVAILABLE", async () => {
    const closing = await startTestBroker();
    const streams = Array.from({ length: 3 }, () => watchEvents(closing, closing.adminToken));
    for (const stream of streams) expect(await stillOpenAfter(stream)).toBe("open");
    const closed = closing.close();
    for (const stream of streams) {
      expect(await stream.ended).toMatchObject({ code: Code.Unavailable, rawMessage: "the broker is shutting down - open the stream again" });
    }
    await closed;
  });
});
