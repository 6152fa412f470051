import { chmodSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { MongoClient } from "mongodb";
import { afterAll, describe, expect, it } from "vitest";
import { startEmbeddedFerretDb } from "../../src/store/embedded-ferretdb.js";

const base = mkdtempSync(join(tmpdir(), "oauth2-broker-ferret-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe("the embedded FerretDB", () => {
  it("puts the socket of a data directory too deep for a socket path in a private directory, the same on every start", async () => {
    const dir = join(base, "a".repeat(60), "b".repeat(60), "ferretdb");
    const ferretdb = await startEmbeddedFerretDb(dir);
    const socket = decodeURIComponent(new URL(ferretdb.uri).host);
    let stopped = false;
    try {
      expect(socket.startsWith(join(tmpdir(), "oauth2-broker-ferretdb-"))).toBe(true);
      expect(statSync(dirname(socket)).mode & 0o777).toBe(0o700);
      const client = await MongoClient.connect(ferretdb.uri);
      await client.db("probe").collection("c").insertOne({ _id: "kept" as never });
      await client.close();
      await ferretdb.stop();
      stopped = true;

      // Loosened by someone in between: refused rather than listened in on.
      chmodSync(dirname(socket), 0o755);
      await expect(startEmbeddedFerretDb(dir)).rejects.toThrow(
        `${dirname(socket)} is not a private directory of this user: remove it or use a shorter data directory`,
      );
      chmodSync(dirname(socket), 0o700);

      const again = await startEmbeddedFerretDb(dir);
      expect(again.uri).toBe(ferretdb.uri);
      const reader = await MongoClient.connect(again.uri);
      expect(await reader.db("probe").collection("c").findOne({ _id: "kept" as never })).toEqual({ _id: "kept" });
      await reader.close();
      await again.stop();
    } finally {
      if (!stopped) await ferretdb.stop();
      rmSync(dirname(socket), { recursive: true, force: true });
    }
  }, 60_000);

  it("keeps every acknowledged write when FerretDB is killed (SQLite commits without an fsync each, synchronous=NORMAL)", async () => {
    const dir = join(base, "killed");
    const ferretdb = await startEmbeddedFerretDb(dir);
    const client = await MongoClient.connect(ferretdb.uri);
    const collection = client.db("probe").collection<{ _id: string }>("c");
    // One commit each, as Initialise's state inserts are: none may wait for a checkpoint to be kept.
    for (let i = 0; i < 50; i++) await collection.insertOne({ _id: `written-${i}` });
    await client.close();
    process.kill(ferretdb.pid, "SIGKILL");
    await ferretdb.stop();

    const again = await startEmbeddedFerretDb(dir);
    const reader = await MongoClient.connect(again.uri);
    try {
      expect(await reader.db("probe").collection("c").countDocuments()).toBe(50);
    } finally {
      await reader.close();
      await again.stop();
    }
  }, 60_000);
});
