import type { Db } from "mongodb";
import { expect } from "vitest";

/**
 * Every document of every collection (leases aside: they come and go with calls), as text. An
 * empty state window collection is left out: an instance may create one ahead of its first insert.
 * The recent-event windows are left out too: copies of `events` for the feed, dropped by time.
 */
export async function databaseSnapshot(db: Db): Promise<string> {
  const collections = (await db.listCollections().toArray())
    .map((c) => c.name)
    .filter((name) => name !== "leases" && !name.startsWith("events_recent_w"))
    .sort();
  const parts: string[] = [];
  for (const name of collections) {
    const documents = await db.collection(name).find().sort({ _id: 1 }).toArray();
    if (documents.length > 0 || !name.startsWith("oauth_states_w")) parts.push(`${name}:${JSON.stringify(documents)}`);
  }
  return parts.join("\n");
}

/** Runs an attack and asserts that the database is exactly as it was. */
export async function expectUnchanged(db: Db, attack: () => Promise<void>): Promise<void> {
  // Let the background relay finish publishing earlier events first.
  await expect.poll(() => db.collection("connections").countDocuments({ "pending_events.0": { $exists: true } }), { timeout: 15_000 }).toBe(0);
  await expect.poll(() => db.collection("connection_outbox").countDocuments(), { timeout: 15_000 }).toBe(0);
  const before = await databaseSnapshot(db);
  await attack();
  expect(await databaseSnapshot(db)).toBe(before);
}
