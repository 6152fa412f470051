/**
 * Issue 21's tenant rows for `npm run bench` (BENCH_ONLY=tenant runs only these): a small
 * organisation's ListConnections and CountConnections while another holds BENCH_NEIGHBOUR
 * connections (default 100 000), the same reads as the queries before the directory, and the
 * small organisation's hot paths alone and under the neighbour's 16 listing loops.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { MongoClient } from "mongodb";
import { v7 as uuidv7 } from "uuid";
import { RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { ConnectionService } from "../gen/oauth2broker/v1/connection_service_pb.js";
import type { DirectorySlotDocument } from "../src/store/connection-directory.js";
import type { ConnectionDocument } from "../src/store/connections.js";
import { storedConnection } from "./documents.js";
import { adminTransport, createBenchCredential, initialiseRequest } from "./requests.js";

const NEIGHBOUR = Number(process.env.BENCH_NEIGHBOUR ?? 100_000);
const SMALL = 20;
const READ_SAMPLES = Number(process.env.BENCH_TENANT_SAMPLES ?? 50);
/** The scans the queries before the directory run take seconds each at 100 000: fewer samples. */
const SCAN_SAMPLES = 3;
const HOT_RPS = 20;
const HOT_MS = Number(process.env.BENCH_HOT_MS ?? 10_000);
const FLOOD_LOOPS = 16;
/** A hot-path call still unanswered after this counts as an error, so the flood row always finishes. */
const CALL_TIMEOUT_MS = 5_000;

export interface TenantRow {
  scenario: string;
  concurrency: number;
  calls: number;
  errors: number;
  p50_ms: number;
  p99_ms: number;
}

interface BrokerHandle {
  httpUrl: string;
  stop: () => Promise<void>;
}

export async function tenantReads(
  mongodbUri: string,
  tokenUrl: string,
  startBroker: (database: string, adminToken: string) => Promise<BrokerHandle>,
): Promise<TenantRow[]> {
  const database = `bench_tenant_${Date.now()}`;
  const adminToken = `bench-${uuidv7()}-${uuidv7()}`;
  const started = Date.now();
  await seedNeighbour(mongodbUri, database);
  console.error(`  seeded ${NEIGHBOUR} connections of organisation "big" in ${Math.round((Date.now() - started) / 1000)} s`);
  const broker = await startBroker(database, adminToken);
  const transport = adminTransport(broker.httpUrl, adminToken);
  try {
    const small = await makeSmallOrganisation(broker.httpUrl, transport, tokenUrl);
    const connections = createClient(ConnectionService, transport);
    // The directory is used once the start-up reconcile has run over the neighbour's connections.
    await directoryComplete(mongodbUri, database);
    const rows: TenantRow[] = [];
    const row = (scenario: string, concurrency: number, samples: Samples): TenantRow => {
      const result = { scenario, concurrency, ...samples.summary() };
      rows.push(result);
      console.error(`  ${scenario}: p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms, errors ${result.errors}`);
      return result;
    };
    row(`small organisation ListConnections (first page), neighbour holds ${NEIGHBOUR}`, 1, await timed(READ_SAMPLES, () => connections.listConnections({ organisationId: "small" })));
    row(`small organisation CountConnections, neighbour holds ${NEIGHBOUR}`, 1, await timed(READ_SAMPLES, () => connections.countConnections({ organisationId: "small" })));
    const big = await timed(1, async () => {
      const { counts } = await connections.countConnections({ organisationId: "big" });
      if (counts[0]?.count !== BigInt(NEIGHBOUR)) throw new Error(`the neighbour's count is ${counts[0]?.count}, not ${NEIGHBOUR}`);
    });
    row(`the neighbour's own CountConnections (${NEIGHBOUR}, one read of its slot range)`, 1, big);
    const bigAgain = await timed(5, () => connections.countConnections({ organisationId: "big" }));
    row(`  the same again, nothing changed since (the tally this instance kept)`, 1, bigAgain);
    // BENCH_TENANT_SCANS=0 leaves out the queries before the directory (minutes each at 100 000 on a busy machine).
    if (process.env.BENCH_TENANT_SCANS !== "0") {
      const scans = await scanQueries(mongodbUri, database);
      row(`  the same, as the queries before the directory: ListConnections`, 1, scans.list);
      row(`  the same, as the queries before the directory: CountConnections`, 1, scans.count);
    }

    const alone = await hotPaths(transport, small);
    row(`small organisation GetAccessToken at ${HOT_RPS}/s, alone`, 1, alone.token);
    row(`small organisation Initialise at ${HOT_RPS}/s, alone`, 1, alone.initialise);
    const stop = new AbortController();
    const flood = Array.from({ length: FLOOD_LOOPS }, () => listingLoop(transport, stop.signal));
    const flooded = await hotPaths(transport, small);
    stop.abort();
    const loops = await Promise.all(flood);
    row(`small organisation GetAccessToken at ${HOT_RPS}/s, neighbour runs ${FLOOD_LOOPS} listing loops`, 1, flooded.token);
    row(`small organisation Initialise at ${HOT_RPS}/s, neighbour runs ${FLOOD_LOOPS} listing loops`, 1, flooded.initialise);
    const served = loops.reduce((sum, loop) => sum + loop.served, 0);
    const refused = loops.reduce((sum, loop) => sum + loop.refused, 0);
    console.error(`  the neighbour's loops: ${served} listings served, ${refused} refused with RetryInfo`);
    return rows;
  } finally {
    await broker.stop();
  }
}

async function directoryComplete(mongodbUri: string, database: string): Promise<void> {
  const client = new MongoClient(mongodbUri);
  try {
    while ((await client.db(database).collection("connection_directory").findOne({ _id: "~complete" as never })) === null) await sleep(500);
  } finally {
    await client.close();
  }
}

/** The neighbour's connections as the broker writes them, with their directory slots, by insertMany. */
async function seedNeighbour(mongodbUri: string, database: string): Promise<void> {
  const client = new MongoClient(mongodbUri);
  try {
    const db = client.db(database);
    const start = Date.now() - NEIGHBOUR;
    for (let i = 0; i < NEIGHBOUR; i += 1_000) {
      const batch = Array.from({ length: Math.min(1_000, NEIGHBOUR - i) }, (_, j) => neighbourConnection(i + j + 1, new Date(start + i + j)));
      await db.collection<ConnectionDocument>("connections").insertMany(batch);
      await db.collection<DirectorySlotDocument>("connection_directory").insertMany(batch.map(slotFor));
    }
    // The broker leaves a fresh `changed` tag after every change to an organisation's slots.
    await db.collection("connection_directory").insertMany([
      { _id: "big/head" as never, seq: NEIGHBOUR },
      { _id: "big/changed" as never, seq: 0, tag: uuidv7() },
    ]);
  } finally {
    await client.close();
  }
}

/** One of the neighbour's connections, made at `at`, in slot `seq`. */
function neighbourConnection(seq: number, at: Date): ConnectionDocument {
  return { ...storedConnection(uuidv7({ msecs: at.getTime() }), "big", at), directory_seq: seq };
}

function slotFor(connection: ConnectionDocument): DirectorySlotDocument {
  return {
    _id: `big/${connection.directory_seq}`,
    connection_id: connection._id,
    connector_id: connection.connector_id,
    credential_id: connection.credential_id,
    status: connection.status,
    claim_time: connection.create_time,
  };
}

/** The small organisation: a credential and SMALL connections made through the real flow. */
async function makeSmallOrganisation(httpUrl: string, transport: Transport, tokenUrl: string): Promise<{ credentialId: string; connectionId: string }> {
  const credentialId = await createBenchCredential(transport, tokenUrl, "small");
  const connections = createClient(ConnectionService, transport);
  for (let i = 0; i < SMALL; i++) {
    const { url } = await connections.initialiseOAuth2Connection(initialiseRequest(credentialId, "small"));
    await (await fetch(`${httpUrl}/oauth2/callback?state=${new URL(url).searchParams.get("state")}&code=c`)).arrayBuffer();
  }
  const { connections: made } = await connections.listConnections({ organisationId: "small" });
  return { credentialId: credentialId, connectionId: made[0]!.id };
}

/** The listings and counts as the broker ran them before the directory, straight through the driver. */
async function scanQueries(mongodbUri: string, database: string): Promise<{ list: Samples; count: Samples }> {
  const client = new MongoClient(mongodbUri);
  try {
    const connections = client.db(database).collection<ConnectionDocument>("connections");
    const list = await timed(SCAN_SAMPLES, () => connections.find({ organisation_id: "small", status: { $ne: "DELETED" } }).sort({ _id: -1 }).limit(51).toArray());
    const count = await timed(SCAN_SAMPLES, () =>
      Promise.all([
        ...(["ACTIVE", "REFRESH_FAILED", "NEEDS_REAUTHORIZATION", "PENDING"] as const).map((status) => connections.countDocuments({ organisation_id: "small", status })),
        connections.find({ organisation_id: "small", status: { $in: ["REFRESH_FAILED", "NEEDS_REAUTHORIZATION"] } }).limit(10_000).toArray(),
      ]),
    );
    return { list, count };
  } finally {
    await client.close();
  }
}

/** GetAccessToken and Initialise, each started open-loop at HOT_RPS for HOT_MS. */
async function hotPaths(transport: Transport, small: { credentialId: string; connectionId: string }): Promise<{ token: Samples; initialise: Samples }> {
  const connections = createClient(ConnectionService, transport);
  const token = new Samples();
  const initialise = new Samples();
  const calls: Promise<void>[] = [];
  const started = performance.now();
  for (let i = 0; performance.now() - started < HOT_MS; i++) {
    const due = started + (i * 1000) / HOT_RPS;
    if (due > performance.now()) await sleep(due - performance.now());
    const options = { timeoutMs: CALL_TIMEOUT_MS };
    calls.push(token.time(() => connections.getAccessToken({ organisationId: "small", connectionId: small.connectionId }, options)));
    calls.push(initialise.time(() => connections.initialiseOAuth2Connection(initialiseRequest(small.credentialId, "small"), options)));
  }
  await Promise.all(calls);
  return { token, initialise };
}

/** One of the neighbour's listing loops: its first page, again and again, waiting as RetryInfo says when refused. */
async function listingLoop(transport: Transport, stop: AbortSignal): Promise<{ served: number; refused: number }> {
  const connections = createClient(ConnectionService, transport);
  let served = 0;
  let refused = 0;
  while (!stop.aborted) {
    try {
      await connections.listConnections({ organisationId: "big" }, { signal: stop });
      served++;
    } catch (error) {
      if (stop.aborted) break;
      const refusal = ConnectError.from(error);
      if (refusal.code !== Code.ResourceExhausted) throw refusal;
      refused++;
      const delay = refusal.findDetails(RetryInfoSchema)[0]?.retryDelay;
      await sleep(delay === undefined ? 1_000 : durationMs(delay), undefined, { signal: stop }).catch(() => undefined);
    }
  }
  return { served, refused };
}

class Samples {
  readonly #ms: number[] = [];
  #errors = 0;

  async time(call: () => Promise<unknown>): Promise<void> {
    const t0 = performance.now();
    try {
      await call();
      this.#ms.push(performance.now() - t0);
    } catch {
      this.#errors++;
    }
  }

  summary(): { calls: number; errors: number; p50_ms: number; p99_ms: number } {
    const sorted = [...this.#ms].sort((a, b) => a - b);
    const pick = (q: number) => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 10) / 10;
    return { calls: sorted.length + this.#errors, errors: this.#errors, p50_ms: pick(0.5), p99_ms: pick(0.99) };
  }
}

async function timed(count: number, call: () => Promise<unknown>): Promise<Samples> {
  const samples = new Samples();
  for (let i = 0; i < count; i++) await samples.time(call);
  return samples;
}
