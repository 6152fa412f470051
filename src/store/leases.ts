import { randomUUID } from "node:crypto";
import type { Collection, Db, IndexDescription } from "mongodb";
import { insertUnlessPresent } from "./database.js";

/** A short exclusive claim on a resource (a connection to refresh, an event to deliver). */
export interface LeaseDocument {
  _id: string;
  holder: string;
  expire_time: Date;
}

export const leaseIndexes: IndexDescription[] = [
  // Leftover leases of crashed holders are cleaned up; until then they are taken over on expiry.
  { key: { expire_time: 1 }, name: "expire_time_ttl", expireAfterSeconds: 0 },
];

export interface Lease {
  key: string;
  holder: string;
  /** When others may take it over (by this process's clock). */
  expireTime: Date;
}

/**
 * The only module that reads or writes the `leases` collection. A lease is a document whose _id is
 * the resource: taking it is an insert, which the unique _id makes atomic on MongoDB and on
 * FerretDB alike (FerretDB v1 runs findOneAndUpdate as a read then a write, so a conditional
 * update cannot decide a race there). A crashed holder's lease is taken over once expired.
 */
export class LeaseStore {
  readonly collection: Collection<LeaseDocument>;

  constructor(db: Db) {
    this.collection = db.collection<LeaseDocument>("leases");
  }

  /** Takes the lease for `durationMs`, or returns null while someone else holds it. */
  async tryAcquire(key: string, durationMs: number): Promise<Lease | null> {
    const holder = randomUUID();
    for (let attempt = 0; attempt < 2; attempt++) {
      const expireTime = new Date(Date.now() + durationMs);
      if (await insertUnlessPresent(this.collection, { _id: key, holder, expire_time: expireTime })) return { key, holder, expireTime };
      // Held: take it over only if it has expired (its holder crashed or hung).
      const { deletedCount } = await this.collection.deleteOne({ _id: key, expire_time: { $lte: new Date() } });
      if (deletedCount !== 1) return null;
    }
    return null;
  }

  /** Like tryAcquire, but waits up to `waitMs` (trying every `pollMs`) for the holder to finish. Null if it did not. */
  async acquire(key: string, durationMs: number, waitMs: number, pollMs = 25): Promise<Lease | null> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const lease = await this.tryAcquire(key, durationMs);
      if (lease !== null || Date.now() >= deadline) return lease;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }

  async release(lease: Lease): Promise<void> {
    await this.collection.deleteOne({ _id: lease.key, holder: lease.holder });
  }
}

/** The lease a connection is changed under (refreshed, reauthorized, confirmed, deleted...). */
export function connectionLeaseKey(connectionId: string): string {
  return `connection:${connectionId}`;
}
