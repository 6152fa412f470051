/**
 * The Node load generator, for what ghz cannot drive: Connect JSON over HTTP/1.1, the browser
 * callback, and the database ceiling (straight through the driver). Run as its own process by
 * bench/run.ts so it never shares a core's event loop with the server:
 * `node dist/bench/load.js '<spec JSON>'` prints one JSON result line.
 * Workers run closed loops (a new call as soon as the last returns) for the duration, after a
 * warm-up; latencies are kept whole for exact percentiles.
 */
import http from "node:http";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { MongoClient } from "mongodb";
import { ConnectionService } from "../gen/oauth2broker/v1/connection_service_pb.js";
import { initialiseRequest } from "./requests.js";

export interface LoadSpec {
  scenario:
    | "health"
    | "initialise-grpc"
    | "initialise-connect"
    | "callback"
    | "start-flows"
    | "complete-flows"
    | "access-token"
    | "db-initialise"
    | "proxy"
    | "direct-api";
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  /** Stop after this many calls instead (the soak): as many as are started once measuring. */
  totalCalls?: number;
  /** Open loop: start calls at this fixed rate (ghz `--rps`), whatever the latency. */
  rps?: number;
  grpcUrl: string;
  httpUrl: string;
  token: string;
  credentialId: string;
  connectionId: string;
  mongodbUri: string;
  database: string;
  /** The loopback provider API the proxy scenarios call (directly, or through /proxy/). */
  apiUrl?: string;
  /** complete-flows: the states of flows that start-flows left pending, one callback each. */
  states?: string[];
}

export interface LoadResult {
  calls: number;
  errors: number;
  seconds: number;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  /** Open-loop runs only (from every call's latency). */
  p999_ms?: number;
  /** start-flows: the states of the flows it started (pending, for complete-flows). */
  states?: string[];
}

/** A row of `npm run bench`'s table (bench/run.ts). */
export interface Row extends LoadResult {
  scenario: string;
  /** Open-loop runs: the fixed rate offered. */
  offered_rps?: number;
  concurrency: number;
  peak_rss_mb: number;
  /** The broker's user + system CPU per measured call (from /proc/<pid>/stat, after the warm-up). */
  cpu_ms_per_call?: number;
  ratio_to_ceiling?: number;
}

const spec = JSON.parse(process.argv[2] ?? "{}") as LoadSpec;
const bearer: Interceptor = (next) => (req) => (req.header.set("authorization", `Bearer ${spec.token}`), next(req));

/** The states start-flows made, in the order their Initialise returned. */
const startedStates: string[] = [];

/**
 * A flow's two halves: InitialiseOAuth2Connection makes a state; the callback completes the flow
 * (consume the state, exchange the code at the minimal token endpoint, store the connection) and
 * returns its own latency.
 */
function oauthFlows(): { start: () => Promise<string>; complete: (state: string) => Promise<number> } {
  const client = createClient(ConnectionService, createGrpcTransport({ baseUrl: spec.grpcUrl, interceptors: [bearer] }));
  return {
    start: async () => {
      const { url } = await client.initialiseOAuth2Connection({ ...initialiseRequest(spec.credentialId), scopes: ["email"] });
      return new URL(url).searchParams.get("state")!;
    },
    complete: async (state) => {
      const t0 = performance.now();
      const response = await fetch(`${spec.httpUrl}/oauth2/callback?state=${state}&code=bench-code`);
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
      return performance.now() - t0;
    },
  };
}

/** `call` may return the latency to record, when only part of it is the thing measured. */
async function makeCall(): Promise<{ call: () => Promise<unknown>; close: () => Promise<void> }> {
  switch (spec.scenario) {
    case "initialise-connect": {
      // Connect JSON over HTTP/1.1 with keep-alive: one connection per worker, as many callers would.
      const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency });
      const client = createClient(
        ConnectionService,
        createConnectTransport({ baseUrl: spec.httpUrl, httpVersion: "1.1", interceptors: [bearer], nodeOptions: { agent } }),
      );
      return { call: () => client.initialiseOAuth2Connection(initialiseRequest(spec.credentialId)), close: async () => agent.destroy() };
    }
    case "callback": {
      // Each iteration starts a flow (not timed), then completes it at the callback (timed).
      // Latencies are the callback's; req/s counts whole flows.
      const flows = oauthFlows();
      return { call: async () => flows.complete(await flows.start()), close: async () => {} };
    }
    case "start-flows": {
      // Flows left pending: their states are handed back in the result, for complete-flows.
      const flows = oauthFlows();
      return { call: async () => void startedStates.push(await flows.start()), close: async () => {} };
    }
    case "complete-flows": {
      // One callback per state given (totalCalls should be their number), timed as in "callback".
      const flows = oauthFlows();
      const states = [...(spec.states ?? [])];
      return { call: () => flows.complete(states.shift()!), close: async () => {} };
    }
    case "db-initialise": {
      // The database ceiling: exactly the reads and writes InitialiseOAuth2Connection makes (find
      // the credential, insert the state), straight through the driver.
      const mongo = new MongoClient(spec.mongodbUri, { maxPoolSize: Math.max(10, spec.concurrency) });
      await mongo.connect();
      const db = mongo.db(spec.database);
      let n = 0;
      return {
        call: async () => {
          await db.collection("credentials").findOne({ _id: spec.credentialId as never, organisation_id: "bench" });
          const now = new Date();
          // A collection of its own, with the same documents, so the scenarios that follow meet
          // an oauth_states collection of the size they made themselves.
          await db.collection("oauth_states_ceiling").insertOne({
            _id: `bench-${process.pid}-${n++}-${Math.random()}` as never,
            organisation_id: "bench",
            connector_id: "bench",
            credential_id: spec.credentialId,
            client_id: "bench-client",
            redirect_uri: "http://127.0.0.1/oauth2/callback",
            scopes: ["openid", "email", "profile", "offline_access"],
            code_verifier: "x".repeat(80),
            nonce: "n".repeat(43),
            create_time: now,
            expire_time: new Date(now.getTime() + 600_000),
          });
        },
        close: () => mongo.close(),
      };
    }
    case "proxy":
    case "direct-api": {
      // GET over HTTP/1.1 with keep-alive, one connection per worker: through the broker's
      // /proxy/<connection_id>/ (the admin token, naming the organisation), or straight to the API.
      const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency });
      const viaProxy = spec.scenario === "proxy";
      const url = new URL(viaProxy ? `${spec.httpUrl}/proxy/${spec.connectionId}/v1/items?limit=10` : `${spec.apiUrl}/v1/items?limit=10`);
      const headers: http.OutgoingHttpHeaders = viaProxy ? { authorization: `Bearer ${spec.token}`, "x-broker-organisation": "bench" } : {};
      const get = () =>
        new Promise<void>((resolve, reject) => {
          const req = http.request({ host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, headers, agent }, (res) => {
            res.resume();
            res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
          });
          req.on("error", reject);
          req.end();
        });
      return { call: get, close: async () => agent.destroy() };
    }
    default:
      throw new Error(`${spec.scenario} is a gRPC scenario: bench/ghz.ts runs it`);
  }
}

async function main(): Promise<void> {
  const { call, close } = await makeCall();
  const latencies: number[] = [];
  let errors = 0;
  let calls = 0;
  let started = 0;
  const warmupEnd = Date.now() + spec.warmupMs;
  let measuring = false;
  let start = 0;
  const end = () => (spec.totalCalls !== undefined ? started >= spec.totalCalls : Date.now() >= start + spec.durationMs);
  const worker = async () => {
    for (;;) {
      if (!measuring && Date.now() >= warmupEnd) {
        measuring = true;
        start = Date.now();
      }
      if (measuring && end()) return;
      // A call counts if it started after the warm-up; totalCalls bounds the calls started.
      const counted = measuring;
      if (counted) started++;
      const t0 = performance.now();
      try {
        const timed = await call();
        if (counted) latencies.push(typeof timed === "number" ? timed : performance.now() - t0);
      } catch {
        if (counted) errors++;
      }
      if (counted) calls++;
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  const seconds = (Date.now() - start) / 1000;
  await close();
  latencies.sort((a, b) => a - b);
  const pick = (q: number) => Math.round((latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0) * 100) / 100;
  const result: LoadResult = { calls, errors, seconds, rps: Math.round(calls / seconds), p50_ms: pick(0.5), p99_ms: pick(0.99) };
  if (spec.scenario === "start-flows") result.states = startedStates;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

void main().then(() => process.exit(0));
