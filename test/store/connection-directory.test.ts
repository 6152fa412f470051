import { randomUUID } from "node:crypto";
import { MongoClient } from "mongodb";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ConnectionService, ConnectionStatus } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { type ConnectionDocument, ConnectionStore, type ListPosition, type ConnectionStatus as StoredStatus } from "../../src/store/connections.js";
import { connectDatabase, type Database } from "../../src/store/database.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";

// Issue 21: an organisation's connections are listed and counted from its directory slots, by
// exact `_id` finds. Slots are claimed by unique inserts and mirrors written by one lease holder
// at a time, so the figures stay exact under racing writers on FerretDB, where updates are a read
// then a write and `$inc` is not atomic.

let database: Database;

beforeAll(async () => {
  database = await connectDatabase(inject("mongodbUri"), `test_${randomUUID().replaceAll("-", "")}`);
});
afterAll(async () => {
  database.stopSweepers();
  await database.client.close();
});

function connection(organisationId: string, i: number, status: StoredStatus = "ACTIVE"): ConnectionDocument {
  const now = new Date();
  return {
    _id: uuidv7(),
    organisation_id: organisationId,
    connector_id: `connector-${i % 3}`,
    credential_id: `credential-${i % 2}`,
    status,
    scopes: [],
    token_type: "Bearer",
    pending_events: [],
    create_time: now,
    update_time: now,
  };
}

describe("the connection directory", () => {
  it("gives 64 connections created at once by two instances 64 distinct slots, and counts and lists them exactly", async () => {
    // Two stores on two clients: two instances, each with its own idea of the newest slot.
    const other = await connectDatabase(inject("mongodbUri"), database.db.databaseName);
    try {
      const stores = [new ConnectionStore(database.db), new ConnectionStore(other.db)];
      const made = Array.from({ length: 64 }, (_, i) => connection("racing", i));
      await Promise.all(made.map((document, i) => stores[i % 2]!.insert(document)));
      const seqs = made.map((document) => document.directory_seq).sort((a, b) => a! - b!);
      expect(seqs).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
      await stores[0]!.directory.markComplete(true);

      const { byStatus } = await stores[1]!.counts("racing", 100);
      expect(Object.fromEntries(byStatus)).toEqual({ ACTIVE: 64, REFRESH_FAILED: 0, NEEDS_REAUTHORIZATION: 0, PENDING: 0 });
      // Newest first in the order their slots were claimed, a page at a time, each page starting
      // after the last one's position.
      const newestFirst = [...made].sort((a, b) => b.directory_seq! - a.directory_seq!).map((document) => document._id);
      const pages: string[] = [];
      for (let after: ListPosition | undefined; pages.length < 64; ) {
        const page = await stores[0]!.list("racing", {}, after, 10);
        pages.push(...page.map(({ document }) => document._id));
        after = page.at(-1)!.position;
      }
      expect(pages).toEqual(newestFirst);
      // A page token from before the directory names a connection ID: the page after it is the same.
      const afterTenth = await stores[1]!.list("racing", {}, { id: newestFirst[9]! }, 10);
      expect(afterTenth.map(({ document }) => document._id)).toEqual(newestFirst.slice(10, 20));
      const filtered = await stores[0]!.list("racing", { connectorId: "connector-1", credentialId: "credential-0" }, undefined, 100);
      expect(filtered.map(({ document }) => document._id)).toEqual(newestFirst.filter((id) => made.findIndex((document) => document._id === id) % 6 === 4));
      expect(await stores[0]!.list("nobody", {}, undefined, 10)).toEqual([]);

      // Racing status changes of 40 connections from both instances (each under its own lease in
      // the broker; here each connection has one writer), with deletions among them.
      const changes: Array<[number, StoredStatus]> = Array.from({ length: 40 }, (_, i) => [i, (["REFRESH_FAILED", "NEEDS_REAUTHORIZATION", "DELETED", "PENDING"] as const)[i % 4]!]);
      await Promise.all(changes.map(([i, status]) => stores[i % 2]!.update(made[i]!, { set: { status } })));
      const counts = await stores[0]!.counts("racing", 100);
      expect(Object.fromEntries(counts.byStatus)).toEqual({ ACTIVE: 24, REFRESH_FAILED: 10, NEEDS_REAUTHORIZATION: 10, PENDING: 10 });
      // The other instance counted before these changes: the tally it kept is not used past them.
      expect(Object.fromEntries((await stores[1]!.counts("racing", 100)).byStatus)).toEqual(Object.fromEntries(counts.byStatus));
      expect(counts.failingCredentialIds.sort()).toEqual(
        changes.filter(([, status]) => status === "REFRESH_FAILED" || status === "NEEDS_REAUTHORIZATION").map(([i]) => `credential-${i % 2}`).sort(),
      );
      const failing = await stores[1]!.list("racing", { status: "REFRESH_FAILED" }, undefined, 100);
      expect(failing.map(({ document }) => document._id).sort()).toEqual(changes.filter(([, s]) => s === "REFRESH_FAILED").map(([i]) => made[i]!._id).sort());
      expect((await stores[1]!.list("racing", {}, undefined, 100)).length).toBe(54);
    } finally {
      await other.client.close();
    }
  });
});

describe("slots of deleted connections", () => {
  it("are skipped once counted: the low mark moves past them while two instances create, delete and count at once, and counts stay exact", async () => {
    const other = await connectDatabase(inject("mongodbUri"), database.db.databaseName);
    try {
      const stores = [new ConnectionStore(database.db), new ConnectionStore(other.db)];
      await stores[0]!.directory.markComplete(true);
      const first = Array.from({ length: 40 }, (_, i) => connection("churn", i));
      await Promise.all(first.map((document, i) => stores[i % 2]!.insert(document)));
      // The 30 oldest slots are deleted while 20 more connections are made and both instances count.
      const oldest = [...first].sort((a, b) => a.directory_seq! - b.directory_seq!).slice(0, 30);
      const later = Array.from({ length: 20 }, (_, i) => connection("churn", i));
      const counting = Array.from({ length: 6 }, (_, i) => stores[i % 2]!.counts("churn", 100));
      await Promise.all([
        ...oldest.map((document, i) => stores[i % 2]!.update(document, { set: { status: "DELETED" } })),
        ...later.map((document, i) => stores[i % 2]!.insert(document)),
        ...counting,
      ]);
      for (const store of stores) expect((await store.counts("churn", 100)).byStatus.get("ACTIVE")).toBe(30);
      const low = await database.db.collection<{ _id: string; seq: number }>("connection_directory").findOne({ _id: "churn/low" });
      expect(low?.seq).toBeGreaterThanOrEqual(31);
      // From the mark up: still exact, and the listing the same.
      for (const store of stores) expect((await store.counts("churn", 100)).byStatus.get("ACTIVE")).toBe(30);
      const live = [...first.filter((document) => !oldest.includes(document)), ...later].sort((a, b) => b.directory_seq! - a.directory_seq!).map((document) => document._id);
      expect((await stores[1]!.list("churn", {}, undefined, 100)).map(({ document }) => document._id)).toEqual(live);
      // More deletions at the bottom: the mark moves on with the next count.
      const next = [...first.filter((document) => !oldest.includes(document))].sort((a, b) => a.directory_seq! - b.directory_seq!);
      await Promise.all(next.map((document, i) => stores[i % 2]!.update(document, { set: { status: "DELETED" } })));
      expect((await stores[0]!.counts("churn", 100)).byStatus.get("ACTIVE")).toBe(20);
      const moved = await database.db.collection<{ _id: string; seq: number }>("connection_directory").findOne({ _id: "churn/low" });
      expect(moved?.seq).toBe(Math.min(...later.map((document) => document.directory_seq!)));
      // Connections made since a count: the tally kept by each instance adds them (their slots
      // alone are read), on the instance that made them and on the other.
      const more = Array.from({ length: 5 }, (_, i) => connection("churn", i, i === 0 ? "PENDING" : "ACTIVE"));
      await Promise.all(more.map((document, i) => stores[i % 2]!.insert(document)));
      for (const store of stores) {
        expect(Object.fromEntries((await store.counts("churn", 100)).byStatus)).toEqual({ ACTIVE: 24, REFRESH_FAILED: 0, NEEDS_REAUTHORIZATION: 0, PENDING: 1 });
      }
    } finally {
      await other.client.close();
    }
  });
});

describe("a page of connections", () => {
  it("reads the slots and connections it shows, however many the organisation made at the same moment", async () => {
    const commands: string[] = [];
    const counted = await connectDatabase(inject("mongodbUri"), database.db.databaseName, (command, collection) => commands.push(`${command} ${collection}`));
    try {
      const store = new ConnectionStore(counted.db);
      await store.directory.markComplete(true);
      // 400 connections made within a second (a bulk import): before, a first page read every slot
      // made within 5 s of its oldest connection, and every connection they named.
      const made = Array.from({ length: 400 }, (_, i) => connection("bulk", i));
      for (let i = 0; i < made.length; i += 50) await Promise.all(made.slice(i, i + 50).map((document) => store.insert(document)));
      const newestFirst = [...made].sort((a, b) => b.directory_seq! - a.directory_seq!).map((document) => document._id);

      for (const [after, expected] of [
        [undefined, newestFirst.slice(0, 10)],
        [{ seq: made.find((document) => document._id === newestFirst[199])!.directory_seq! }, newestFirst.slice(200, 210)],
      ] as const) {
        commands.length = 0;
        const page = await store.list("bulk", {}, after, 10);
        expect(page.map(({ document }) => document._id)).toEqual(expected);
        // 10 slots, the head hint and its probes, the floor and low marks; 10 connections.
        expect(commands.filter((command) => command === "find connection_directory").length).toBeLessThanOrEqual(10 + 1 + 2 + 2);
        expect(commands.filter((command) => command === "find connections")).toHaveLength(10);
      }
    } finally {
      counted.stopSweepers();
      await counted.client.close();
    }
  });
});

describe("a broker started on connections from before the directory", () => {
  const name = `test_${randomUUID().replaceAll("-", "")}`;
  const before = Array.from({ length: 30 }, (_, i) => connection("acme", i, i % 5 === 0 ? "REFRESH_FAILED" : "ACTIVE"));
  const deleted = connection("acme", 99, "DELETED");
  let broker: TestBroker;

  beforeAll(async () => {
    const client = new MongoClient(inject("mongodbUri"));
    try {
      const db = client.db(name);
      await db.collection<ConnectionDocument>("connections").insertMany([...before, deleted, connection("globex", 1)]);
      // A slot claimed long ago whose connection was never inserted (a crash in between), and a
      // stale mirror (a write that failed after the connection's).
      const stale = before[1]!;
      const longAgo = new Date(Date.now() - 3_600_000);
      await db.collection("connection_directory").insertMany([
        { _id: "acme/1" as never, connection_id: uuidv7(), connector_id: "x", credential_id: "x", status: "ACTIVE", claim_time: longAgo },
        { _id: "acme/2" as never, connection_id: stale._id, connector_id: stale.connector_id, credential_id: stale.credential_id, status: "PENDING", claim_time: longAgo },
      ]);
      await db.collection("connections").updateOne({ _id: stale._id as never }, { $set: { directory_seq: 2 } });
    } finally {
      await client.close();
    }
    broker = await startTestBroker({ MONGODB_DATABASE: name });
  });
  afterAll(async () => {
    await broker.close();
  });

  it("gives them slots, mends what a crash left, and lists and counts them as before", async () => {
    await expect.poll(() => broker.database.db.collection("connection_directory").countDocuments({ _id: "~complete" as never }), { timeout: 15_000 }).toBe(1);
    const client = broker.connect(ConnectionService);
    const counts = await client.countConnections({ organisationId: "acme" });
    expect(counts.counts.map((entry) => [entry.status, Number(entry.count)])).toEqual([
      [ConnectionStatus.ACTIVE, 24],
      [ConnectionStatus.REFRESH_FAILED, 6],
      [ConnectionStatus.NEEDS_REAUTHORIZATION, 0],
      [ConnectionStatus.PENDING, 0],
    ]);
    expect(Object.fromEntries(Object.entries(counts.failingConnectionsByCredential).map(([k, v]) => [k, Number(v)]))).toEqual({ "credential-0": 3, "credential-1": 3 });
    const first = await client.listConnections({ organisationId: "acme", pageSize: 20 });
    const second = await client.listConnections({ organisationId: "acme", pageSize: 20, pageToken: first.nextPageToken });
    // Newest slot first: the one that had slot 2 (claimed after the directory existed), then the
    // adopted ones, which were given the slots below in ID order, newest first.
    const adopted = before.filter((c) => c !== before[1]).map((c) => c._id).sort().reverse();
    expect([...first.connections, ...second.connections].map((c) => c.id)).toEqual([before[1]!._id, ...adopted]);
    expect(second.nextPageToken).toBe("");
    expect((await client.listConnections({ organisationId: "globex" })).connections).toHaveLength(1);
  });
});
