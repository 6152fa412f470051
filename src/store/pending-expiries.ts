import type { Collection, Db, IndexDescription } from "mongodb";
import { isDuplicateKey } from "./database.js";

/** When a PENDING connection (made with an end user ID, not yet confirmed) is due to be deleted. */
export interface PendingExpiryDocument {
  /** The connection's ID. */
  _id: string;
  expire_time: Date;
}

export const pendingExpiryIndexes: IndexDescription[] = [{ key: { expire_time: 1 }, name: "expire_time_1" }];

/**
 * The only module that reads or writes the `pending_connection_expiries` collection: a note per
 * PENDING connection, written before the connection, and removed when the connection is
 * confirmed-and-found-ACTIVE or deleted by the expiry job. The job reads these notes instead of
 * sweeping `connections` with `{pending_expire_time: {$lt: now}}`, which on FerretDB 1.24 (no TTL
 * indexes; any filter but `{_id}` decodes the whole table) read every connection once a minute.
 * The collection holds only the connections waiting for confirmation, so its reads and deletes
 * stay small.
 */
export class PendingExpiryStore {
  readonly collection: Collection<PendingExpiryDocument>;

  constructor(db: Db) {
    this.collection = db.collection<PendingExpiryDocument>("pending_connection_expiries");
  }

  /** Notes when the connection expires (a note already there is kept: the job re-reads the connection). */
  async note(connectionId: string, expireTime: Date): Promise<void> {
    try {
      await this.collection.insertOne({ _id: connectionId, expire_time: expireTime });
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
    }
  }

  /** Notes due by `now`, earliest first. */
  async due(now: Date, limit: number): Promise<PendingExpiryDocument[]> {
    return this.collection.find({ expire_time: { $lte: now } }).sort({ expire_time: 1 }).limit(limit).toArray();
  }

  /** Moves a note to the connection's current expiry (a reconnect gave it a new one). */
  async postpone(connectionId: string, expireTime: Date): Promise<void> {
    await this.collection.updateOne({ _id: connectionId }, { $set: { expire_time: expireTime } });
  }

  async remove(connectionId: string): Promise<void> {
    await this.collection.deleteOne({ _id: connectionId });
  }
}
