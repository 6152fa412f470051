import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { type Db, MongoClient, MongoServerError } from "mongodb";
import { afterAll, describe, expect, it } from "vitest";
import { type EmbeddedFerretDb, startEmbeddedFerretDb } from "../../src/store/embedded-ferretdb.js";

// The wrapper's index for FerretDB's `_id` lookups (tools/ferretdb/idindex.go, issue 21) against
// FerretDB's own behaviours. A FerretDB that pushed `_id` down another way, or laid its tables out
// differently, fails the plan checks here.

const base = mkdtempSync(join(tmpdir(), "oauth2-broker-id-index-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

interface Doc {
  _id: string;
  n?: number;
}

/** SQLite's plan for a find by `_id`, as FerretDB's explain reports it ("id=… detail=…" lines). */
async function idFindPlan(db: Db, collection: string): Promise<string> {
  const explained = await db.command({ explain: { find: collection, filter: { _id: "probe" } } });
  expect(explained.filterPushdown).toBe(true);
  return (explained.queryPlanner.Plan as string[]).join("\n");
}

async function expectIndexedIdFind(db: Db, collection: string, table: string): Promise<void> {
  const plan = await idFindPlan(db, collection);
  expect(plan).toContain(`SEARCH ${table} USING INDEX oauth2_broker_id_${table} (<expr>=?)`);
}

/** FerretDB's table for a collection: its metadata, read with SQLite while FerretDB is stopped. */
function tables(dir: string, database: string): Map<string, string> {
  const sqlite = new DatabaseSync(join(dir, `${database}.sqlite`));
  try {
    const rows = sqlite.prepare("SELECT name, table_name FROM _ferretdb_collections").all() as { name: string; table_name: string }[];
    return new Map(rows.map((r) => [r.name, r.table_name]));
  } finally {
    sqlite.close();
  }
}

async function withFerretDb<T>(dir: string, body: (db: Db, client: MongoClient, ferretdb: EmbeddedFerretDb) => Promise<T>): Promise<T> {
  const ferretdb = await startEmbeddedFerretDb(dir);
  const client = await MongoClient.connect(ferretdb.uri);
  try {
    return await body(client.db("probe"), client, ferretdb);
  } finally {
    await client.close();
    await ferretdb.stop();
  }
}

describe("the wrapper's _id index on FerretDB's SQLite tables", () => {
  it("is used by a find by _id on a collection created by an insert, by create, and by createIndexes, and not shown by listIndexes", async () => {
    const dir = join(base, "plans");
    await withFerretDb(dir, async (db) => {
      await db.collection<Doc>("inserted").insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: `d-${i}`, n: i })));
      await db.createCollection("created");
      await db.collection("indexed").createIndex({ n: 1 }, { name: "by_n", unique: true });
    });
    const names = tables(dir, "probe");
    await withFerretDb(dir, async (db) => {
      for (const collection of ["inserted", "created", "indexed"]) await expectIndexedIdFind(db, collection, names.get(collection)!);
      expect((await db.collection("inserted").listIndexes().toArray()).map((i) => i.name)).toEqual(["_id_"]);
      expect((await db.collection("indexed").listIndexes().toArray()).map((i) => i.name).sort()).toEqual(["_id_", "by_n"]);
      // createIndexes' own unique index still refuses a duplicate.
      await db.collection<Doc>("indexed").insertOne({ _id: "a", n: 1 });
      await expect(db.collection<Doc>("indexed").insertOne({ _id: "b", n: 1 })).rejects.toMatchObject({ code: 11000 });
      expect(await db.collection<Doc>("inserted").findOne({ _id: "d-42" })).toEqual({ _id: "d-42", n: 42 });
    });
  }, 60_000);

  it("indexes a new collection before the command that created it returns", async () => {
    await withFerretDb(join(base, "immediate"), async (db) => {
      // The state and event window collections come and go while the broker runs.
      for (let i = 0; i < 5; i++) {
        await db.collection<Doc>(`window_${i}`).insertOne({ _id: "probe" });
        expect(await idFindPlan(db, `window_${i}`)).toMatch(/SEARCH \S+ USING INDEX oauth2_broker_id_/);
      }
    });
  }, 60_000);

  it("keeps exactly one of 16 racing inserts of one _id, the rest failing with code 11000", async () => {
    await withFerretDb(join(base, "duplicates"), async (db) => {
      const collection = db.collection<Doc>("raced");
      await collection.insertOne({ _id: "first" });
      for (let round = 0; round < 10; round++) {
        const results = await Promise.allSettled(Array.from({ length: 16 }, (_, n) => collection.insertOne({ _id: `id-${round}`, n })));
        const failures = results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason as unknown);
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        expect(failures).toHaveLength(15);
        for (const failure of failures) expect(failure instanceof MongoServerError && failure.code === 11000).toBe(true);
      }
      expect(await collection.countDocuments()).toBe(11);
    });
  }, 60_000);

  it("goes with dropCollection, stays through renameCollection, and comes back on a collection made again", async () => {
    const dir = join(base, "drop-rename");
    await withFerretDb(dir, async (db) => {
      await db.collection<Doc>("old_name").insertOne({ _id: "kept" });
      await db.collection("old_name").rename("new_name");
      await db.collection<Doc>("dropped").insertOne({ _id: "gone" });
      expect(await db.collection("dropped").drop()).toBe(true);
      await db.collection<Doc>("dropped").insertOne({ _id: "again" });
      expect(await db.collection<Doc>("new_name").findOne({ _id: "kept" })).toEqual({ _id: "kept" });
      expect(await db.collection<Doc>("dropped").find().toArray()).toEqual([{ _id: "again" }]);
    });
    const names = tables(dir, "probe");
    const sqlite = new DatabaseSync(join(dir, "probe.sqlite"));
    const ours = (sqlite.prepare("SELECT tbl_name FROM sqlite_schema WHERE type = 'index' AND name LIKE 'oauth2_broker_id_%'").all() as { tbl_name: string }[]).map((r) => r.tbl_name);
    sqlite.close();
    // One index per table that exists, none left from the dropped table.
    expect(ours.sort()).toEqual([...names.values()].sort());
    await withFerretDb(dir, async (db) => {
      await expectIndexedIdFind(db, "new_name", names.get("new_name")!);
      await expectIndexedIdFind(db, "dropped", names.get("dropped")!);
    });
  }, 60_000);

  it("leaves no file behind when a database is dropped, nor after it is made again", async () => {
    const dir = join(base, "drop-database");
    await withFerretDb(dir, async (_db, client) => {
      for (let i = 0; i < 20; i++) {
        const db = client.db("dropped");
        await db.collection<Doc>(`c${i % 3}`).insertMany([{ _id: "a" }, { _id: "b" }]);
        await db.collection<Doc>("other").insertOne({ _id: `x-${i}` });
        expect(await db.collection<Doc>(`c${i % 3}`).findOne({ _id: "b" })).toEqual({ _id: "b" });
        await db.dropDatabase();
        expect(readdirSync(dir).filter((f) => f.startsWith("dropped."))).toEqual([]);
      }
      const db = client.db("dropped");
      await db.collection<Doc>("c").insertOne({ _id: "last" });
      expect(await idFindPlan(db, "c")).toMatch(/USING INDEX oauth2_broker_id_/);
    });
  }, 60_000);

  it("indexes a data directory made without it (the previous wrapper's) at start, keeping its documents", async () => {
    const dir = join(base, "upgrade");
    const count = 20_000;
    await withFerretDb(dir, async (db) => {
      const collection = db.collection<Doc>("connections");
      for (let i = 0; i < count; i += 1_000) await collection.insertMany(Array.from({ length: 1_000 }, (_, j) => ({ _id: `c-${i + j}`, n: i + j })));
      await db.collection<Doc>("small").insertOne({ _id: "s" });
    });
    // What the previous wrapper left: FerretDB's own tables and indexes, without ours.
    const sqlite = new DatabaseSync(join(dir, "probe.sqlite"));
    const ours = sqlite.prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND name LIKE 'oauth2_broker_id_%'").all() as { name: string }[];
    expect(ours).toHaveLength(2);
    for (const { name } of ours) sqlite.exec(`DROP INDEX "${name}"`);
    sqlite.close();
    const names = tables(dir, "probe");

    await withFerretDb(dir, async (db) => {
      await expectIndexedIdFind(db, "connections", names.get("connections")!);
      await expectIndexedIdFind(db, "small", names.get("small")!);
      const collection = db.collection<Doc>("connections");
      expect(await collection.countDocuments()).toBe(count);
      expect(await collection.findOne({ _id: `c-${count - 1}` })).toEqual({ _id: `c-${count - 1}`, n: count - 1 });
      expect((await collection.updateOne({ _id: "c-7" }, { $set: { n: -7 } })).modifiedCount).toBe(1);
      expect((await collection.deleteOne({ _id: "c-8" })).deletedCount).toBe(1);
      await expect(collection.insertOne({ _id: "c-9" })).rejects.toMatchObject({ code: 11000 });
      expect(await collection.findOne({ _id: "c-7" })).toEqual({ _id: "c-7", n: -7 });
    });
    expect(existsSync(join(dir, "probe.sqlite"))).toBe(true);
  }, 120_000);
});
