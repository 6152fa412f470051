/**
 * The per-request database operations of the hot paths, timed against how many documents their
 * collections hold: `npm run build && node dist/bench/store-ops.js [MONGODB_URI] [N]` (default: an
 * embedded FerretDB, N = 50 000). Prints the median and p99 of each operation with an empty
 * store and with N documents. Not part of `npm run bench` (it takes a few minutes on 2 cores).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Collection, MongoClient } from "mongodb";
import { hashState, stateWindowAt } from "../src/oauth/state.js";
import { LeaseStore } from "../src/store/leases.js";
import { type OAuthStateDocument, OAuthStateStore } from "../src/store/oauth-states.js";
import { startEmbeddedFerretDb } from "../src/store/embedded-ferretdb.js";

const N = Number(process.argv[3] ?? 50_000);
const SAMPLES = 40;
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

async function time(label: string, op: (i: number) => Promise<unknown>): Promise<string> {
  const samples: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
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
    await time("lease acquire + release", async (i) => leases.release((await leases.tryAcquire(`${round}-lease-${i}`, 10_000))!)),
    await time("connection updateOne by _id (NOT flat on FerretDB)", (i) => connections.updateOne({ _id: `c-${i}` as never }, { $set: { update_time: new Date() } })),
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
    const started = Date.now();
    // Spread over the last FILL_SPAN_MS, as a steady rate of Initialise calls leaves them.
    for (let i = 0; i < N; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => states.insert(state(`pending-${i + j}`, ((i + j) / N) * FILL_SPAN_MS))));
    }
    for (let i = 0; i < N; i += 1000) {
      await connections.insertMany(Array.from({ length: 1000 }, (_, j) => ({ _id: `filler-${i + j}` as never, pad: "x".repeat(500) })));
    }
    console.log(`filled ${N} pending states and ${N} connections in ${Math.round((Date.now() - started) / 1000)} s`);
    const full = await measure(states, leases, connections, "full");
    console.log(`\nwith 0 pending states / connections:\n  ${empty.join("\n  ")}`);
    console.log(`with ${N} pending states / connections:\n  ${full.join("\n  ")}`);
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
