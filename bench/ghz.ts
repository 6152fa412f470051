/**
 * The gRPC scenarios, loaded by ghz (github.com/bojand/ghz, Go, built into .tools/ by
 * scripts/install-bench-tools.sh). On this 2-core machine a Node gRPC client tops out below the
 * server: the health check it drives at ~370 req/s, ghz at ~850 from the same server, so only
 * ghz measures the framework ceiling rather than the client.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { LoadResult, LoadSpec } from "./load.js";
import { initialiseRequestJson } from "./requests.js";

type GrpcScenario = "health" | "initialise-grpc" | "access-token";

export function isGrpcScenario(scenario: LoadSpec["scenario"]): scenario is GrpcScenario {
  return scenario === "health" || scenario === "initialise-grpc" || scenario === "access-token";
}

interface GhzReport {
  total: number;
  statusCodeDistribution?: Record<string, number>;
  errorDistribution?: Record<string, number>;
  latencyDistribution: { percentage: number; latency: number }[] | null;
  details?: { latency: number; error?: string }[];
}

/** Runs the warm-up, then the measured run, over one HTTP/2 connection as one client would. */
export async function ghzLoad(root: string, spec: LoadSpec & { scenario: GrpcScenario }): Promise<LoadResult> {
  if (spec.warmupMs > 0) await ghz(root, spec, [`--duration=${spec.warmupMs}ms`]);
  const report = await ghz(root, spec, spec.totalCalls === undefined ? [`--duration=${spec.durationMs}ms`] : [`--total=${spec.totalCalls}`]);
  const ok = report.statusCodeDistribution?.OK ?? 0;
  // At the end of a timed run ghz closes its connection under the calls still in flight; those
  // come back as "transport is closing" or, cancelled by ghz itself, "the client connection is
  // closing"; neither is the server's error.
  const cut = Object.entries(report.errorDistribution ?? {})
    .filter(([message]) => message.includes("transport is closing") || message.includes("the client connection is closing"))
    .reduce((sum, [, n]) => sum + n, 0);
  const calls = Object.values(report.statusCodeDistribution ?? {}).reduce((sum, n) => sum + n, 0) - cut;
  const seconds = report.total / 1e9;
  const percentile = (p: number) => Math.round((report.latencyDistribution?.find((d) => d.percentage === p)?.latency ?? 0) / 1e4) / 100;
  const result = { calls, errors: calls - ok, seconds, rps: Math.round(ok / seconds), p50_ms: percentile(50), p99_ms: percentile(99) };
  if (result.errors > 0) console.error(`  ${spec.scenario} errors: ${JSON.stringify(report.errorDistribution ?? report.statusCodeDistribution)}`);
  if (spec.rps === undefined || report.details === undefined) return result;
  // ghz's distribution stops at p99; p99.9 comes from every call's latency (ns).
  const latencies = report.details.map((d) => d.latency).sort((a, b) => a - b);
  const exact = (q: number) => Math.round((latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0) / 1e4) / 100;
  return { ...result, p50_ms: exact(0.5), p99_ms: exact(0.99), p999_ms: exact(0.999) };
}

async function ghz(root: string, spec: LoadSpec & { scenario: GrpcScenario }, run: string[]): Promise<GhzReport> {
  const { call, data } = callFor(spec);
  const args = [
    "--insecure",
    `--call=${call}`,
    `--data=${JSON.stringify(data)}`,
    `--metadata=${JSON.stringify({ authorization: `Bearer ${spec.token}` })}`,
    `--concurrency=${spec.concurrency}`,
    ...(spec.rps === undefined ? [] : [`--rps=${spec.rps}`]),
    "--connections=1",
    "--format=json",
    ...run,
    new URL(spec.grpcUrl).host,
  ];
  const { stdout } = await promisify(execFile)(join(root, ".tools/ghz"), args, { maxBuffer: 512 << 20 });
  return JSON.parse(stdout) as GhzReport;
}

function callFor(spec: LoadSpec & { scenario: GrpcScenario }): { call: string; data: object } {
  switch (spec.scenario) {
    case "health":
      return { call: "grpc.health.v1.Health/Check", data: {} };
    case "access-token":
      return { call: "oauth2broker.v1.ConnectionService/GetAccessToken", data: { organisation_id: "bench", connection_id: spec.connectionId } };
    case "initialise-grpc":
      return { call: "oauth2broker.v1.ConnectionService/InitialiseOAuth2Connection", data: initialiseRequestJson(spec.credentialId) as object };
  }
}
