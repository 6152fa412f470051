import { randomUUID } from "node:crypto";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connectDatabase, type Database } from "../../src/store/database.js";
import type { EventDocument } from "../../src/store/event-document.js";
import { EventStore } from "../../src/store/events.js";

// Issue 21: events are kept for BROKER_EVENT_RETENTION. On the embedded database they go without
// per-document deletes: `events` is archived whole every rotation and an archive dropped whole
// once past the retention, but not while one of its events still waits for its webhook delivery.

let database: Database;
const commands: string[] = [];
const RETENTION_MS = 4 * 60_000;

beforeAll(async () => {
  database = await connectDatabase(inject("mongodbUri"), `test_${randomUUID().replaceAll("-", "")}`, (command, collection) =>
    commands.push(`${command} ${collection}`),
  );
});
afterAll(async () => {
  database.stopSweepers();
  await database.client.close();
});

function event(at: number, delivery: EventDocument["delivery"], organisationId = "acme"): EventDocument {
  return {
    _id: uuidv7({ msecs: at }),
    type: "connection.created",
    organisation_id: organisationId,
    connection_id: uuidv7(),
    connector_id: "c",
    credential_id: "cred",
    status: "ACTIVE",
    create_time: new Date(at),
    publish_time: new Date(at),
    delivery,
    attempts: 0,
    next_attempt_time: new Date(at),
  };
}

const collectionNames = async () => (await database.db.listCollections({}, { nameOnly: true }).toArray()).map(({ name }) => name).sort();

describe("event retention", () => {
  it("archives the history whole, lists across archives, keeps an archive while a delivery is pending, then drops it whole", async () => {
    const events = new EventStore(database.db, RETENTION_MS);
    expect(events.rotationMs).toBe(60_000);
    const start = Date.now();
    await events.rotate(new Date(start));
    expect(await collectionNames()).toEqual([]);
    const pending = event(start + 1, "pending");
    const delivered = event(start + 2, "delivered");
    await events.publish(pending);
    await events.publish(delivered);
    // The first window begins once there are events.
    await events.rotate(new Date(start));

    // One rotation later, the window's events are in an archive and still listed.
    await events.rotate(new Date(start + 60_001));
    const archive = `events_until_${(start + 60_000).toString(36)}`;
    expect(await collectionNames()).toContain(archive);
    expect(await database.db.collection("events").countDocuments()).toBe(0);
    const later = event(start + 60_500, "delivered");
    await events.publish(later);
    expect((await events.list("acme", undefined, undefined, 10)).map((e) => e._id)).toEqual([later._id, delivered._id, pending._id]);
    expect((await events.list("acme", undefined, later._id, 1)).map((e) => e._id)).toEqual([delivered._id]);
    expect(await events.list("globex", undefined, undefined, 10)).toEqual([]);

    // Past the retention: the archive waits for the pending delivery.
    const pastRetention = new Date(start + 60_000 + RETENTION_MS + 1);
    await events.rotate(pastRetention);
    expect(await collectionNames()).toContain(archive);
    // The delivery ends: its outcome is written to the archived event, then the archive goes.
    await events.recordAttempt(pending._id, { delivery: "delivered", attempts: 1, delivered_time: new Date() });
    expect(await database.db.collection(archive).findOne({ _id: pending._id as never })).toMatchObject({ delivery: "delivered", attempts: 1 });
    commands.length = 0;
    await events.rotate(pastRetention);
    expect(await collectionNames()).not.toContain(archive);
    expect(commands.filter((command) => command.startsWith("delete"))).toEqual([]);
    expect(commands).toContain(`drop ${archive}`);
    // Rotated again meanwhile (several windows passed): only what is within the retention is listed.
    expect((await events.list("acme", undefined, undefined, 10)).map((e) => e._id)).toEqual([later._id]);
  });
});
