import type { Collection, Db, IndexDescription } from "mongodb";
import { insertUnlessPresent } from "./database.js";

/**
 * When something on a connection waiting for ConfirmConnection expires: the connection itself
 * (PENDING, made with an end user ID) or a reconnect's held grant. A connection has at most one
 * of them at a time (a PENDING connection's reconnect replaces its grant instead of holding one).
 */
export interface ConnectionExpiryDocument {
  /** The connection's ID. */
  _id: string;
  expire_time: Date;
}

export const connectionExpiryIndexes: IndexDescription[] = [{ key: { expire_time: 1 }, name: "expire_time_1" }];

/**
 * The only module that reads or writes the `connection_expiries` collection: a note per
 * connection with an unconfirmed grant, written with the write that makes the grant (before it),
 * and removed by the expiry job once it has handled it. The job reads these notes instead of
 * scanning `connections` (`{pending_expire_time: {$lt: now}}`, the sweep that replaced the TTL
 * index on FerretDB, once a minute, and `{"reauthorization.hold_expire_time": {$lte: now}}`):
 * on FerretDB 1.24 (no TTL indexes; any filter but `{_id}` decodes the whole table) each read
 * every connection. The collection holds only the connections waiting for a confirmation, so its
 * reads and deletes stay small.
 */
export class ConnectionExpiryStore {
  readonly collection: Collection<ConnectionExpiryDocument>;

  constructor(db: Db) {
    this.collection = db.collection<ConnectionExpiryDocument>("connection_expiries");
  }

  /** Notes when the grant expires (a note already there is kept: the job re-reads the connection and moves it). */
  async note(connectionId: string, expireTime: Date): Promise<void> {
    await insertUnlessPresent(this.collection, { _id: connectionId, expire_time: expireTime });
  }

  /** Notes due by `now`, earliest first. */
  async due(now: Date, limit: number): Promise<ConnectionExpiryDocument[]> {
    return this.collection.find({ expire_time: { $lte: now } }).sort({ expire_time: 1 }).limit(limit).toArray();
  }

  /** Moves a note to the connection's current expiry (a reconnect or a new hold gave it a later one). */
  async postpone(connectionId: string, expireTime: Date): Promise<void> {
    await this.collection.updateOne({ _id: connectionId }, { $set: { expire_time: expireTime } });
  }

  async remove(connectionId: string): Promise<void> {
    await this.collection.deleteOne({ _id: connectionId });
  }
}
