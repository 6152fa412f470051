/**
 * Issue 21's "Callback completion for flows started among full-speed starts" for `npm run bench`
 * (BENCH_ONLY=among-starts runs only this). On a broker and database of their own:
 * 1. on an empty state store, start BENCH_AMONG_CALLBACKS flows, then complete them;
 * 2. while InitialiseOAuth2Connection runs at its c=16 rate (ghz, closed loop, for
 *    BENCH_AMONG_FLOOD_MS), start the same number of flows among its last starts, so they share
 *    their 10-second state windows with thousands of others; once the flood is over, complete them.
 * Only the callbacks are timed (c=4, the real /oauth2/callback against the loopback token
 * endpoint, as the pending-flows rows). Target: the second p50 within 1.5× of the first.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { MongoClient } from "mongodb";
import { v7 as uuidv7 } from "uuid";
import { STATE_WINDOW_SECONDS, stateWindowOf } from "../src/oauth/state.js";
import { OAuthStateStore } from "../src/store/oauth-states.js";
import type { LoadResult, LoadSpec, Row } from "./load.js";
import { adminTransport, createBenchCredential } from "./requests.js";

const MEASURED = Number(process.env.BENCH_AMONG_CALLBACKS ?? 200);
const FLOOD_MS = Number(process.env.BENCH_AMONG_FLOOD_MS ?? 30_000);
/** The measured flows start this long before the flood ends (starting 200 under the flood takes a few seconds). */
const LEAD_MS = Number(process.env.BENCH_AMONG_LEAD_MS ?? 8_000);
/** Pause between the last start and the first callback, in both sequences: a user takes longer than that to sign in. */
const SETTLE_MS = Number(process.env.BENCH_AMONG_SETTLE_MS ?? 5_000);
/** Whole flows run first on the fresh broker (JIT, connection pools), so the empty store's row is not a cold start. */
const WARMUP_FLOWS = 50;
const FLOOD_CONCURRENCY = 16;
const CALLBACK_CONCURRENCY = 4;
const TARGET_RATIO = 1.5;

export interface BenchBroker {
  grpcUrl: string;
  httpUrl: string;
  /** Samples the broker's RSS until stop(), which returns the peak in MB. */
  rssSampler: () => { stop: () => number };
  stop: () => Promise<void>;
}

interface Deps {
  startBroker: (database: string, adminToken: string) => Promise<BenchBroker>;
  /** bench/run.ts's load(): ghz for the gRPC scenarios, bench/load.ts for the others. */
  load: (spec: LoadSpec) => Promise<LoadResult>;
}

export async function callbackAmongStarts(mongodbUri: string, tokenUrl: string, deps: Deps): Promise<Row[]> {
  const database = `bench_among_${Date.now()}`;
  const adminToken = `bench-${uuidv7()}-${uuidv7()}`;
  const broker = await deps.startBroker(database, adminToken);
  const mongo = await MongoClient.connect(mongodbUri);
  try {
    const transport = adminTransport(broker.httpUrl, adminToken);
    const credentialId = await createBenchCredential(transport, tokenUrl);
    const base = { durationMs: 0, warmupMs: 0, grpcUrl: broker.grpcUrl, httpUrl: broker.httpUrl, token: adminToken, credentialId: credentialId, connectionId: "", mongodbUri, database };
    const states = new OAuthStateStore(mongo.db(database));

    /** Starts MEASURED flows, waits for `afterStarts` (the flood's end), settles, then times their callbacks. */
    const measure = async (scenario: string, afterStarts: () => Promise<unknown>): Promise<Row> => {
      const started = await deps.load({ ...base, scenario: "start-flows", concurrency: CALLBACK_CONCURRENCY, totalCalls: MEASURED });
      const startedAt = Date.now();
      await afterStarts();
      await sleep(SETTLE_MS);
      const wait = Math.round((Date.now() - startedAt) / 1000);
      const sampler = broker.rssSampler();
      const result = await deps.load({ ...base, scenario: "complete-flows", concurrency: CALLBACK_CONCURRENCY, totalCalls: started.states!.length, states: started.states });
      const windows = await windowSizes(states, started.states!);
      const row = { scenario: `${scenario} (${windows} states in their windows)`, concurrency: CALLBACK_CONCURRENCY, ...result, peak_rss_mb: sampler.stop() };
      console.error(`  ${row.scenario}: p50 ${row.p50_ms} ms, p99 ${row.p99_ms} ms, errors ${row.errors + started.errors} (callbacks launched ${wait} s after the last start)`);
      return row;
    };

    console.error("callback completion for flows started among full-speed starts:");
    await deps.load({ ...base, scenario: "callback", concurrency: CALLBACK_CONCURRENCY, totalCalls: WARMUP_FLOWS });
    // A window of their own for the empty store's flows (the warm-up's states are in the one before).
    await sleep(STATE_WINDOW_SECONDS * 1000 - (Date.now() % (STATE_WINDOW_SECONDS * 1000)) + 100);
    const empty = await measure(`callback, ${MEASURED} flows started on an empty state store`, async () => {});

    let floodEnd = 0;
    const flood = deps.load({ ...base, scenario: "initialise-grpc", concurrency: FLOOD_CONCURRENCY, durationMs: FLOOD_MS }).then((result) => {
      floodEnd = Date.now();
      console.error(`  flood: ${result.calls} flows started over ${Math.round(result.seconds)} s (${result.rps}/s, c=${FLOOD_CONCURRENCY}), errors ${result.errors}`);
      return result;
    });
    // Awaited after the measured starts; a failure before then must not go unhandled meanwhile.
    flood.catch(() => undefined);
    await sleep(Math.max(0, FLOOD_MS - LEAD_MS));
    const among = await measure(`callback, ${MEASURED} flows started among full-speed Initialise (c=${FLOOD_CONCURRENCY})`, async () => {
      const flooding = floodEnd === 0 ? "still running" : `ended ${Math.round((Date.now() - floodEnd) / 100) / 10} s before: raise BENCH_AMONG_LEAD_MS`;
      console.error(`  the measured flows are started; the flood ${flooding}`);
      await flood;
    });

    const ratio = Math.round((among.p50_ms / empty.p50_ms) * 100) / 100;
    const verdict = ratio <= TARGET_RATIO ? "meets" : "misses";
    console.error(`  callback p50 among full-speed starts ÷ empty store: ${ratio}× (${verdict} the target of ≤ ${TARGET_RATIO}×)`);
    among.scenario += `; p50 ${ratio}× the empty store's`;
    return [empty, among];
  } finally {
    await mongo.close();
    await broker.stop();
  }
}

/** How many states (markers left out) the windows of these states hold: "n" or "min–max". */
async function windowSizes(store: OAuthStateStore, states: string[]): Promise<string> {
  const windows = [...new Set(states.map((state) => stateWindowOf(state)!))];
  const sizes = await Promise.all(
    windows.map(async (window) => {
      const collection = store.collectionFor(window);
      return (await collection.countDocuments({})) - (await collection.countDocuments({ _id: { $regex: "^consumed:" } }));
    }),
  );
  const [min, max] = [Math.min(...sizes), Math.max(...sizes)];
  return min === max ? String(min) : `${min}–${max}`;
}
