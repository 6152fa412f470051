import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { connect, createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, whether this runs from `src/store/` (tests) or `dist/src/store/` (npm start). */
const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
export const FERRETDB_BINARY = join(ROOT, ".tools", "ferretdb");

export interface EmbeddedFerretDb {
  uri: string;
  stop(): Promise<void>;
}

/** Builds FerretDB into `.tools/` with the Go toolchain when it is not there yet (a few minutes, once). */
export function installFerretDb(log: (line: string) => void = console.error): void {
  if (existsSync(FERRETDB_BINARY)) return;
  log("building FerretDB into .tools/ (first run only; takes a few minutes)…");
  const result = spawnSync("bash", [join(ROOT, "scripts", "install-ferretdb.sh")], { stdio: "inherit" });
  if (result.status !== 0) throw new Error("could not build FerretDB: see the output above (needs Go 1.24 or newer)");
}

/**
 * Starts a local FerretDB (MongoDB wire protocol, SQLite files under `dataDir`) on loopback and
 * waits until it accepts connections. Port 0 picks a free port.
 */
export async function startEmbeddedFerretDb(dataDir: string, port = 27017): Promise<EmbeddedFerretDb> {
  installFerretDb();
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const chosenPort = port === 0 ? await freePort() : port;
  const address = `127.0.0.1:${chosenPort}`;
  const child = spawn(FERRETDB_BINARY, [`--listen-addr=${address}`, `--sqlite-url=file:${dir}/`, "--log-level=warn"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4096);
  });
  await waitForListening(child, chosenPort, () => stderr);
  return {
    uri: `mongodb://${address}/`,
    stop: () => stopChild(child),
  };
}

async function waitForListening(child: ChildProcess, port: number, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`FerretDB exited with code ${child.exitCode}: ${stderr()}`);
    if (await canConnect(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`FerretDB did not start listening on port ${port} within 30 s: ${stderr()}`);
}

/** The nearest folder above `dir` with a package.json: the repository root. */
export function findRoot(dir: string): string {
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the repository root");
    dir = parent;
  }
  return dir;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
