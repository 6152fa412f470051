import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, whether this runs from `src/store/` (tests) or `dist/src/store/` (npm start). */
const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
export const FERRETDB_BINARY = join(ROOT, ".tools", "ferretdb");

export interface EmbeddedFerretDb {
  uri: string;
  /** The FerretDB process (tests kill it to check what survives). */
  pid: number;
  stop(): Promise<void>;
}

/**
 * FerretDB keeps SQLite's WAL journal (its default) but not SQLite's default `synchronous=FULL`,
 * which fsyncs the WAL on every commit: every InitialiseOAuth2Connection waits for one commit (its
 * state's insert), and on a shared disk an fsync now and then takes 30–300 ms, holding the single
 * writer and every call queued behind it (issue 13's open-loop p99). With `synchronous=NORMAL` a
 * commit is written to the OS and the WAL is fsynced at checkpoints only: committed writes survive
 * the broker or FerretDB dying; a power loss or OS crash may roll back the last ones, never
 * corrupt the file (https://www.sqlite.org/pragma.html#pragma_synchronous). The embedded
 * default is the single-machine setting; a replica set (MONGODB_URI) acknowledges journaled
 * majority writes.
 */
const SQLITE_PRAGMAS = "_pragma=synchronous(normal)";

/** What `ferretdb --revision` prints for the wrapper in tools/ferretdb; another answer means rebuild. */
const WRAPPER_REVISION = "oauth2-broker-ferretdb-4";

/**
 * Builds FerretDB into `.tools/` with the Go toolchain when it is not there yet, or is an older
 * build of the wrapper (a few minutes, once).
 */
export function installFerretDb(log: (line: string) => void = console.error): void {
  if (existsSync(FERRETDB_BINARY)) {
    const revision = spawnSync(FERRETDB_BINARY, ["--revision"], { encoding: "utf8" });
    if (revision.stdout?.trim() === WRAPPER_REVISION) return;
  }
  log("building FerretDB into .tools/ (first run only; takes a few minutes)…");
  const result = spawnSync("bash", [join(ROOT, "scripts", "install-ferretdb.sh")], { stdio: "inherit" });
  if (result.status !== 0) throw new Error("could not build FerretDB: see the output above (needs Go 1.24 or newer)");
}

/**
 * Starts a local FerretDB (MongoDB wire protocol, SQLite files under `dataDir`) and waits until
 * it accepts connections. FerretDB has no authentication, so it is kept to the broker's user:
 * it listens only on a Unix socket in a directory of mode 0700 (no TCP port), holds an exclusive
 * lock on `dataDir` (a second start on one directory fails, naming it), and exits when this
 * process does, even on SIGKILL (it watches its stdin, whose write end only this process holds).
 * The URI is the same for every start on one directory.
 */
export async function startEmbeddedFerretDb(dataDir: string): Promise<EmbeddedFerretDb> {
  installFerretDb();
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const socket = socketPath(dir);
  const child = spawn(
    FERRETDB_BINARY,
    [`--listen-unix=${socket}`, `--lock-file=${join(dir, "ferretdb.lock")}`, "--exit-with-stdin", `--sqlite-url=file:${dir}/?${SQLITE_PRAGMAS}`, "--log-level=warn"],
    { stdio: ["pipe", "ignore", "pipe"] },
  );
  let stderr = "";
  let locked = false;
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    locked ||= stderr.includes("ferretdb: locked ");
    stderr = stderr.slice(-4096);
  });
  // Nothing is ever written: the pipe exists so that FerretDB sees it end when this process ends.
  child.stdin?.on("error", () => {});
  await waitForListening(child, socket, () => locked, () => stderr);
  return {
    uri: `mongodb://${encodeURIComponent(socket)}/`,
    pid: child.pid!,
    stop: () => stopChild(child),
  };
}

/**
 * The socket lives in the data directory (mode 0700). Unix socket paths are limited to 107 bytes,
 * so a deep data directory gets a private directory under the system temp directory instead,
 * named after the data directory, so the URI stays the same across restarts.
 */
function socketPath(dir: string): string {
  const inDataDir = join(dir, "ferretdb.sock");
  if (Buffer.byteLength(inDataDir) <= 100) return inDataDir;
  const name = createHash("sha256").update(dir).digest("hex").slice(0, 16);
  const runDir = join(tmpdir(), `oauth2-broker-ferretdb-${name}`);
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(runDir);
  // Someone else could have made it first, to listen in between: use it only if it is ours.
  if (!stat.isDirectory() || stat.uid !== process.getuid?.() || (stat.mode & 0o077) !== 0) {
    throw new Error(`${runDir} is not a private directory of this user: remove it or use a shorter data directory`);
  }
  return join(runDir, "ferretdb.sock");
}

async function waitForListening(child: ChildProcess, socket: string, locked: () => boolean, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`FerretDB exited with code ${child.exitCode}: ${stderr().trim()}`);
    // Until it holds the lock, a socket that answers may be another FerretDB's on this directory.
    if (locked() && (await canConnect(socket))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`FerretDB did not start listening on ${socket} within 30 s: ${stderr()}`);
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

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
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
