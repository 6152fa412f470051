/**
 * The per-request database operations of the hot paths, timed against how many documents their
 * collections hold: `npm run build && node dist/bench/store-ops.js [MONGODB_URI] [N]` (default: an
 * embedded FerretDB, N = 50 000). Prints the median and p99 of each operation with an empty
 * store and with N documents: pending states, and connections and published events (the hot
 * paths of GetAccessToken, a refresh, the outbox relay, webhook delivery and the event feed).
 * Not part of `npm run bench` (it takes a few minutes on 2 cores).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Collection, type Db, MongoClient } from "mongodb";
import { pino } from "pino";
import { v7 as uuidv7 } from "uuid";
import { SecretBox } from "../src/crypto/secret-box.js";
import { newEvent } from "../src/events/connection-events.js";
import { relayOutbox } from "../src/events/outbox-relay.js";
import { WebhookDispatcher } from "../src/events/webhook-delivery.js";
import { ConnectionStore } from "../src/store/connections.js";
import type { EventDocument } from "../src/store/event-document.js";
import { EventStore } from "../src/store/events.js";
import { OrganisationStore } from "../src/store/organisations.js";
import { hashState, stateWindowAt } from "../src/oauth/state.js";
import { LeaseStore } from "../src/store/leases.js";
import { type OAuthStateDocument, OAuthStateStore } from "../src/store/oauth-states.js";
import { startEmbeddedFerretDb } from "../src/store/embedded-ferretdb.js";
import { storedConnection } from "./documents.js";

const N = Number(process.argv[3] ?? 50_000);
const SAMPLES = 40;
/** Fewer samples for the hot paths: on FerretDB their scans take up to seconds each with N documents. */
const HOT_SAMPLES = 15;
const ORGANISATIONS = 50;
const OLDER_MS = 300_000;
const FILL_SPAN_MS = 540_000;

/** Real state hashes, created `agoMs` ago (which picks their window collection). */
function state(name: string, agoMs = 0): OAuthStateDocument {
  const now = Date.now() - agoMs;
  return {
    _id: hashState(name),
    organisation_id: "bench",
    connector_id: "bench",
    credential_id: "cred",
    client_id: "bench-client",
    redirect_uri: "http://127.0.0.1/oauth2/callback",
    scopes: ["email", "profile"],
    code_verifier: "x".repeat(80),
    create_time: new Date(now),
    expire_time: new Date(now + 600_000),
  };
}

async function time(label: string, op: (i: number) => Promise<unknown>, count = SAMPLES): Promise<string> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await op(i);
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  const pick = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!.toFixed(1);
  return `${label}: p50 ${pick(0.5)} ms, p99 ${pick(0.99)} ms`;
}

async function measure(states: OAuthStateStore, leases: LeaseStore, connections: Collection, round: string): Promise<string[]> {
  // Older states: made five minutes ago, in a window among the pending ones.
  const older = Array.from({ length: SAMPLES }, (_, i) => `${round}-older-${i}`);
  const olderWindow = stateWindowAt(new Date(Date.now() - OLDER_MS));
  await Promise.all(older.map((id) => states.insert(state(id, OLDER_MS))));
  const fresh = Array.from({ length: SAMPLES }, (_, i) => `${round}-fresh-${i}`);
  await Promise.all(fresh.map((id) => states.insert(state(id))));
  return [
    await time("consume an older state (in its window)", (i) => states.consumeByHash(hashState(older[i]!), olderWindow)),
    await time("insert state", (i) => states.insert(state(`${round}-new-${i}`))),
    await time("consume a fresh state (callback)", (i) => states.consumeByHash(hashState(fresh[i]!), stateWindowAt(new Date()))),
    await time("consume an unknown state", (i) => states.consumeByHash(`${round}-forged-${i}`, stateWindowAt(new Date()))),
    await time("is an older state pending (a rate-limited callback)", (i) => states.isPending(hashState(older[i]!), olderWindow)),
    await time("lease acquire + release", async (i) => leases.release((await leases.tryAcquire(`${round}-lease-${i}`, 10_000))!)),
    await time("connection updateOne by _id", (i) => connections.updateOne({ _id: `c-${i}` as never }, { $set: { update_time: new Date() } })),
  ];
}

/** An event published and delivered long ago (history). */
function historicalEvent(i: number): EventDocument {
  const then = new Date(Date.now() - 86_400_000 + i);
  return {
    _id: uuidv7({ msecs: then.getTime() }),
    type: "connection.created",
    organisation_id: `org-${i % ORGANISATIONS}`,
    connection_id: `filler-${i}`,
    connector_id: "bench-connector",
    credential_id: "bench-credential",
    status: "ACTIVE",
    create_time: then,
    publish_time: then,
    delivery: "delivered",
    attempts: 1,
    next_attempt_time: then,
    delivered_time: then,
  };
}

/** The hot paths' operations, through the stores and loops the broker runs. */
async function measureHotPaths(db: Db, round: string): Promise<string[]> {
  const logger = pino({ level: "silent" });
  const connections = new ConnectionStore(db);
  const events = new EventStore(db);
  const leases = new LeaseStore(db);
  const organisations = new OrganisationStore(db);
  const relayDeps = { connections, events, leases, organisations, onPublished: () => {}, logger };
  const dispatcher = new WebhookDispatcher({
    events,
    leases,
    organisations,
    secretBox: new SecretBox([{ id: "k1", key: randomBytes(32) }]),
    fetch,
    retryMinMs: 1_000,
    logger,
  });
  const ids = Array.from({ length: HOT_SAMPLES }, () => uuidv7());
  await Promise.all(ids.map((id, i) => connections.insert(storedConnection(id, `org-${i % ORGANISATIONS}`))));
  const org = (i: number) => `org-${i % ORGANISATIONS}`;
  return [
    await time("GetAccessToken: read the connection (findById)", (i) => connections.findById(org(i), ids[i]!), HOT_SAMPLES),
    await time("GetAccessToken: another organisation's connection (NOT_FOUND)", (i) => connections.findById("other", ids[i]!), HOT_SAMPLES),
    await time("refresh: re-read under the lease + write the tokens", async (i) => {
      const stored = await connections.findByIdUnscoped(ids[i]!);
      await connections.update(stored!, { set: { refresh_time: new Date(), refresh_token_time: new Date() } });
    }, HOT_SAMPLES),
    await time("lease acquire + release", async (i) => leases.release((await leases.tryAcquire(`${round}-hot-lease-${i}`, 10_000))!), HOT_SAMPLES),
    await time("change with an event + relay it by ID", async (i) => {
      await connections.update({ _id: ids[i]!, organisation_id: org(i), status: "ACTIVE" }, { set: { status: "REFRESH_FAILED" }, event: newEvent("connection.refresh_failed", "REFRESH_FAILED", "bench") });
      await relayOutbox(relayDeps, [ids[i]!]);
    }, HOT_SAMPLES),
    await time("relay recovery tick (nothing pending)", () => relayOutbox(relayDeps), HOT_SAMPLES),
    await time("webhook due-scan (nothing due)", () => dispatcher.poll(), HOT_SAMPLES),
    await time("event feed poll (one organisation)", (i) => events.recent.publishedSince(org(i), new Date(Date.now() - 5_000), 500), HOT_SAMPLES),
  ];
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "oauth2-broker-store-ops-"));
  const ferretdb = process.argv[2] ? undefined : await startEmbeddedFerretDb(dataDir);
  const client = new MongoClient(process.argv[2] || ferretdb!.uri);
  try {
    await client.connect();
    const db = client.db(`store_ops_${randomUUID().slice(0, 8)}`);
    const states = new OAuthStateStore(db);
    const leases = new LeaseStore(db);
    const connections = db.collection("connections");
    await connections.insertMany(Array.from({ length: SAMPLES }, (_, i) => ({ _id: `c-${i}` as never, pad: "x".repeat(500) })));
    const empty = await measure(states, leases, connections, "empty");
    const hotEmpty = await measureHotPaths(db, "empty");
    const started = Date.now();
    // Spread over the last FILL_SPAN_MS, as a steady rate of Initialise calls leaves them.
    for (let i = 0; i < N; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => states.insert(state(`pending-${i + j}`, ((i + j) / N) * FILL_SPAN_MS))));
    }
    for (let i = 0; i < N; i += 1000) {
      await connections.insertMany(Array.from({ length: 1000 }, (_, j) => ({ _id: `filler-${i + j}` as never, pad: "x".repeat(500) })));
    }
    for (let i = 0; i < N; i += 1000) {
      await connections.insertMany(Array.from({ length: 1000 }, (_, j) => storedConnection(uuidv7(), `org-${(i + j) % ORGANISATIONS}`) as never));
      await db.collection<EventDocument>("events").insertMany(Array.from({ length: 1000 }, (_, j) => historicalEvent(i + j)));
    }
    console.log(`filled ${N} pending states, ${2 * N} connections and ${N} events in ${Math.round((Date.now() - started) / 1000)} s`);
    const full = await measure(states, leases, connections, "full");
    const hotFull = await measureHotPaths(db, "full");
    console.log(`\nwith 0 pending states / connections:\n  ${empty.join("\n  ")}`);
    console.log(`with ${N} pending states / connections:\n  ${full.join("\n  ")}`);
    console.log(`\nhot paths with 0 connections / events:\n  ${hotEmpty.join("\n  ")}`);
    console.log(`hot paths with ${2 * N} connections / ${N} events:\n  ${hotFull.join("\n  ")}`);
  } finally {
    await client.close();
    await ferretdb?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
