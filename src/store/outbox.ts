import type { Collection, Db, IndexDescription } from "mongodb";
import { insertUnlessPresent } from "./database.js";

/**
 * A connection that has events in its outbox (`pending_events`), keyed by the connection's ID.
 * Written before the change that records the events and removed once the relay has published
 * them, so the collection holds only the connections with work to relay.
 */
export interface OutboxEntryDocument {
  _id: string;
  create_time: Date;
}

export const outboxIndexes: IndexDescription[] = [{ key: { create_time: 1 }, name: "create_time_1" }];

/**
 * The only module that reads or writes the `connection_outbox` collection (ConnectionStore uses
 * it for every write that records an event). The relay's recovery scan reads this small
 * collection instead of looking through every connection: on FerretDB 1.24 a filter other than
 * `{_id}` reads and decodes the whole table, so `{"pending_events.0": {$exists: true}}` on
 * `connections` cost a full table read per scan. Deleting an entry scans only this collection,
 * which holds only the connections still to relay.
 */
export class OutboxStore {
  readonly collection: Collection<OutboxEntryDocument>;

  constructor(db: Db) {
    this.collection = db.collection<OutboxEntryDocument>("connection_outbox");
  }

  /** Notes that the connection has events to relay (already noted: nothing to do). */
  async mark(connectionId: string, now = new Date()): Promise<void> {
    await insertUnlessPresent(this.collection, { _id: connectionId, create_time: now });
  }

  /** Connections with events to relay, oldest notes first. */
  async list(limit: number): Promise<OutboxEntryDocument[]> {
    return this.collection.find({}).sort({ create_time: 1 }).limit(limit).toArray();
  }

  /** The connection's events are out. Call it holding the connection's lease. */
  async clear(connectionId: string): Promise<void> {
    await this.collection.deleteOne({ _id: connectionId });
  }
}
