import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { recordLogLines } from "./run-record.js";

const root = join(import.meta.dirname, "../..");

export interface BrokerProcess {
  child: ChildProcess;
  httpPort: number;
  grpcPort: number;
  adminToken: string;
  output: () => string;
  /** SIGTERM, and the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash, nothing finishes. */
  kill(): Promise<void>;
}

/**
 * Runs the built server (`dist/src/main.js`, built by the global setup) as its own process, as
 * `npm start` does, and waits for its start-up banner.
 */
export async function startBrokerProcess(env: Record<string, string>): Promise<BrokerProcess> {
  const child = spawn(process.execPath, ["--max-semi-space-size=16", "dist/src/main.js"], {
    cwd: root,
    env: { PATH: process.env.PATH, BROKER_HTTP_PORT: "0", BROKER_GRPC_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk) => (output += chunk));
  child.stderr?.on("data", (chunk) => (output += chunk));
  // A plain loop rather than expect.poll, so this also works in beforeAll.
  const deadline = Date.now() + 60_000;
  while (!output.includes("oauth2-broker is running") && child.exitCode === null) {
    if (Date.now() > deadline) throw new Error(`the broker did not start within 60 s:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const grab = (pattern: RegExp) => pattern.exec(output)?.[1] ?? "";
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      recordLogLines(output);
      resolve(code);
    }),
  );
  return {
    child,
    httpPort: Number(grab(/HTTP gateway: +http:\/\/127\.0\.0\.1:(\d+)/)),
    grpcPort: Number(grab(/gRPC: +127\.0\.0\.1:(\d+)/)),
    adminToken: grab(/admin token: +(\S+)/) || (env.BROKER_ADMIN_TOKEN ?? ""),
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}
