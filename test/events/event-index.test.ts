import { randomUUID } from "node:crypto";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connectDatabase, type Database } from "../../src/store/database.js";
import type { EventDocument } from "../../src/store/event-document.js";
import { EventStore } from "../../src/store/events.js";

// Issue 21: ListConnectionEvents reads an organisation's (or a connection's) slots in the event
// index by exact `_id`, so it costs what that organisation holds, not what the history holds; the
// results, their order and paging are those of the organisation filter it replaces.

let database: Database;
const commands: string[] = [];

beforeAll(async () => {
  database = await connectDatabase(inject("mongodbUri"), `test_${randomUUID().replaceAll("-", "")}`, (command, collection) =>
    commands.push(`${command} ${collection}`),
  );
});
afterAll(async () => {
  database.stopSweepers();
  await database.client.close();
});

function event(organisationId: string, connectionId: string, at = Date.now()): EventDocument {
  return {
    _id: uuidv7({ msecs: at }),
    type: "connection.created",
    organisation_id: organisationId,
    connection_id: connectionId,
    connector_id: "c",
    credential_id: "cred",
    status: "ACTIVE",
    create_time: new Date(at),
    publish_time: new Date(),
    delivery: "no_webhook",
    attempts: 0,
    next_attempt_time: new Date(at),
  };
}

const ids = (events: EventDocument[]) => events.map((e) => e._id);
const newestFirst = (events: EventDocument[]) => [...ids(events)].sort().reverse();

describe("the event index", () => {
  it("lists an organisation's events newest first with the same commands however much another organisation holds", async () => {
    const events = new EventStore(database.db);
    expect(await events.adoptIntoIndex()).toBe(0);
    const connection = uuidv7();
    // Published out of ID order, some concurrently (a relay late by a few seconds, racing instances).
    const start = Date.now();
    const small = Array.from({ length: 40 }, (_, i) => event("small", i % 2 === 0 ? connection : uuidv7(), start - ((i * 7) % 40) * 100));
    for (let i = 0; i < small.length; i += 8) await Promise.all(small.slice(i, i + 8).map((e) => events.publish(e)));

    const listPages = async () => {
      const first = await events.list("small", undefined, undefined, 15);
      const second = await events.list("small", undefined, first.at(-1)!._id, 15);
      const timeline = await events.list("small", connection, undefined, 50);
      return { first, second, timeline };
    };
    await listPages(); // (the instance remembers that the window's index is complete)
    commands.length = 0;
    const before = await listPages();
    const commandsBefore = [...commands];
    expect(ids(before.first)).toEqual(newestFirst(small).slice(0, 15));
    expect(ids(before.second)).toEqual(newestFirst(small).slice(15, 30));
    expect(ids(before.timeline)).toEqual(newestFirst(small.filter((e) => e.connection_id === connection)));
    // Exact `_id` finds (and the list of archives).
    expect(new Set(commandsBefore)).toEqual(new Set(["listCollections ", "find events", "find event_index"]));

    // Another organisation's history arrives (written as the relay writes it, in bulk for speed).
    await database.db.collection<EventDocument>("events").insertMany(Array.from({ length: 5_000 }, () => event("big", uuidv7())));
    commands.length = 0;
    const after = await listPages();
    expect(after).toEqual(before);
    expect(commands).toEqual(commandsBefore);
    // Not another organisation's events, even by one of its connections' IDs.
    expect(await events.list("big", connection, undefined, 10)).toEqual([]);
  });

  it("shows each event once when publishers race, and when a relay publishes an event twice", async () => {
    const events = new EventStore(database.db);
    const racing = Array.from({ length: 32 }, () => event("racers", uuidv7()));
    await Promise.all(racing.map((e) => events.publish(e)));
    await events.publish(racing[3]!);
    expect(ids(await events.list("racers", undefined, undefined, 100))).toEqual(newestFirst(racing));
  });
});

describe("events stored before the index", () => {
  it("are listed by their organisation filter until adopted, then through the index, with the same results", async () => {
    const client = database.client.db(`test_${randomUUID().replaceAll("-", "")}`);
    const events = new EventStore(client);
    const connection = uuidv7();
    const legacy = Array.from({ length: 60 }, (_, i) => event("acme", i % 3 === 0 ? connection : uuidv7(), Date.now() - 60_000 + i));
    await client.collection<EventDocument>("events").insertMany([...legacy, ...Array.from({ length: 50 }, () => event("other", uuidv7()))]);
    const pages = async () => [
      ids(await events.list("acme", undefined, undefined, 25)),
      ids(await events.list("acme", undefined, legacy[30]!._id, 25)),
      ids(await events.list("acme", connection, undefined, 100)),
    ];
    const byFilter = await pages();
    expect(byFilter[0]).toEqual(newestFirst(legacy).slice(0, 25));

    expect(await events.adoptIntoIndex()).toBeGreaterThan(0);
    expect(await events.adoptIntoIndex()).toBe(0);
    const later = event("acme", connection);
    await events.publish(later);
    expect(await pages()).toEqual([[later._id, ...byFilter[0]!.slice(0, 24)], byFilter[1], [later._id, ...byFilter[2]!]]);
    // The listing read the index, not `events` by organisation.
    commands.length = 0;
    await events.list("acme", undefined, undefined, 25);
    expect(commands.filter((command) => command.startsWith("find event_index")).length).toBeGreaterThan(25);
  });

  it("move with their window when the history rotates, and go with it", async () => {
    const db = database.client.db(`test_${randomUUID().replaceAll("-", "")}`);
    const events = new EventStore(db, 4 * 60_000);
    await events.adoptIntoIndex();
    const start = Date.now();
    const first = event("acme", uuidv7(), start + 1);
    await events.publish(first);
    await events.rotate(new Date(start));
    await events.rotate(new Date(start + 60_001));
    const end = (start + 60_000).toString(36);
    const names = async () => (await db.listCollections({}, { nameOnly: true }).toArray()).map(({ name }) => name);
    expect(await names()).toEqual(expect.arrayContaining([`events_until_${end}`, `event_index_until_${end}`]));
    const second = event("acme", first.connection_id, start + 60_500);
    await events.publish(second);
    expect(ids(await events.list("acme", undefined, undefined, 10))).toEqual([second._id, first._id]);
    expect(ids(await events.list("acme", first.connection_id, second._id, 10))).toEqual([first._id]);
    await events.rotate(new Date(start + 60_000 + 4 * 60_000 + 1));
    expect(await names()).not.toContain(`event_index_until_${end}`);
    expect(ids(await events.list("acme", undefined, undefined, 10))).toEqual([second._id]);
  });
});
