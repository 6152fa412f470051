import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { CredentialService } from "../gen/oauth2broker/v1/credential_service_pb.js";
import { startEmbeddedFerretDb } from "../src/store/embedded-ferretdb.js";
import { startBrokerProcess } from "./support/broker-process.js";
import { grpcJsClients, unary } from "./support/grpc-js.js";

const dataDir = mkdtempSync(join(tmpdir(), "oauth2-broker-main-"));

/** `npm start` with no MONGODB_URI: the embedded mode, data under the test's directory. */
const start = (env: Record<string, string> = {}) => startBrokerProcess({ BROKER_DATA_DIR: dataDir, ...env });

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("npm start (embedded mode)", () => {
  it("starts FerretDB under the data directory, prints where it listens and the admin token, and keeps data across restarts", async () => {
    const first = await start();
    expect(first.output()).toContain("oauth2-broker is running");
    expect(first.output()).toContain(`admin token:   ${first.adminToken}  (kept in ${dataDir}/admin-token)`);
    expect(first.adminToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(join(dataDir, "admin-token")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, "encryption-keys")).mode & 0o777).toBe(0o600);

    const grpcJs = grpcJsClients(first.grpcPort);
    expect((await unary(grpcJs.health, "Check", { service: "" })).response?.status).toBe("SERVING");
    // A health Watch stream stays open; shutdown must end it instead of waiting for it.
    const watch = grpcJs.health.Watch({ service: "" });
    watch.on("error", () => {});
    await new Promise((resolve) => watch.once("data", resolve));

    const credentials = (port: number, token: string) =>
      createClient(
        CredentialService,
        createConnectTransport({
          baseUrl: `http://127.0.0.1:${port}`,
          httpVersion: "1.1",
          interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
        }),
      );
    const { credential } = await credentials(first.httpPort, first.adminToken).createCredential({
      credential: { organisationId: "acme", name: "Kept", clientId: "c", clientSecret: "s", tokenUrl: "https://idp.example/token" },
    });

    const started = Date.now();
    expect(await first.stop()).toBe(0);
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(first.output()).toContain('"msg":"stopped"');
    grpcJs.close();

    const second = await start();
    expect(second.adminToken).toBe(first.adminToken);
    const { credential: again } = await credentials(second.httpPort, second.adminToken).getCredential({
      organisationId: "acme",
      id: credential!.id,
    });
    expect(again?.name).toBe("Kept");
    expect(await second.stop()).toBe(0);
  }, 90_000);

  it("does not print an operator-supplied BROKER_ADMIN_TOKEN (it was printed in full)", async () => {
    const token = `operator-${"t".repeat(40)}`;
    const dir = mkdtempSync(join(tmpdir(), "oauth2-broker-main-token-"));
    try {
      const running = await start({ BROKER_ADMIN_TOKEN: token, BROKER_DATA_DIR: dir });
      expect(running.output()).toContain("  admin token:   set from BROKER_ADMIN_TOKEN\n");
      expect(running.output()).not.toContain(token);
      expect(running.output()).not.toContain(token.slice(0, 12));
      expect(await running.stop()).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("keeps the embedded FerretDB to this user and this broker: a Unix socket in a 0700 directory, one per directory, gone with a killed broker", async () => {
    const dir = mkdtempSync(join(tmpdir(), "oauth2-broker-main-ferret-"));
    try {
      const broker = await start({ BROKER_DATA_DIR: dir });
      const [ferretdb] = childrenOf(broker.child.pid!);
      expect(ferretdb).toBeDefined();
      // No TCP port anyone could connect to: it had no authentication and showed its port in `ps`.
      expect(listeningTcpSockets(ferretdb!)).toEqual([]);
      expect(statSync(join(dir, "ferretdb")).mode & 0o777).toBe(0o700);
      expect(statSync(join(dir, "ferretdb", "ferretdb.sock")).isSocket()).toBe(true);

      // Two FerretDBs on one directory (three were seen after crashes) are refused.
      await expect(startEmbeddedFerretDb(join(dir, "ferretdb"))).rejects.toThrow(
        `FerretDB exited with code 3: ferretdb: another FerretDB is running on this data directory (${join(dir, "ferretdb", "ferretdb.lock")} is locked)`,
      );

      // kill -9 of the broker: FerretDB was orphaned and kept running.
      await broker.kill();
      await expect.poll(() => isRunning(ferretdb!), { timeout: 10_000 }).toBe(false);

      // The next start takes the directory over, data included.
      const again = await start({ BROKER_DATA_DIR: dir });
      expect(again.adminToken).toBe(broker.adminToken);
      expect((await unary(grpcJsClients(again.grpcPort).health, "Check", { service: "" })).response?.status).toBe("SERVING");
      expect(await again.stop()).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it("refuses to start against MONGODB_URI without an encryption key, naming the variable", async () => {
    const running = await start({ MONGODB_URI: "mongodb://127.0.0.1:1/", BROKER_ADMIN_TOKEN: "t".repeat(40) });
    await expect.poll(() => running.child.exitCode, { timeout: 10_000 }).toBe(2);
    expect(running.output()).toContain("oauth2-broker: invalid configuration: BROKER_ENCRYPTION_KEYS is required when MONGODB_URI is set");
  });
});

function childrenOf(pid: number): number[] {
  return execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map(Number);
}

/** Whether the process exists and is not a zombie waiting to be reaped. */
function isRunning(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false;
  const state = /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, "utf8"))?.[1];
  return state !== "Z" && state !== "X";
}

/** The TCP sockets in LISTEN state (st 0A) that `pid` holds, from /proc/net/tcp and tcp6. */
function listeningTcpSockets(pid: number): string[] {
  const inodes = new Set(
    readdirSync(`/proc/${pid}/fd`)
      .map((fd) => {
        try {
          return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
        } catch {
          return undefined;
        }
      })
      .filter((inode) => inode !== undefined),
  );
  return ["/proc/net/tcp", "/proc/net/tcp6"]
    .flatMap((file) => readFileSync(file, "utf8").split("\n").slice(1))
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[3] === "0A" && inodes.has(fields[9] ?? ""))
    .map((fields) => fields[1] ?? "");
}
