import type { Collection, Db, IndexDescription } from "mongodb";
import { reencrypted } from "../crypto/reencrypt.js";
import type { SecretBox } from "../crypto/secret-box.js";

/**
 * A device authorization (RFC 8628) waiting for its end user: one per PENDING `device_code`
 * connection, with the same `_id`. `device_code` is a SecretBox ciphertext bound to the
 * connection's ID (`connectionSecretContext(id, "device_code")`).
 */
export interface DeviceAuthorizationDocument {
  /** The connection's ID. */
  _id: string;
  organisation_id: string;
  device_code: string;
  /** Seconds between polls: the provider's `interval`, plus 5 for each `slow_down`. */
  interval_seconds: number;
  /** The next poll is due then (set before each poll is sent, so no instance polls sooner). */
  next_poll_time: Date;
  /** The device code's `expires_in` from the start: the connection is deleted then (`expired_token`). */
  expire_time: Date;
  create_time: Date;
}

export const deviceAuthorizationIndexes: IndexDescription[] = [{ key: { next_poll_time: 1 }, name: "next_poll_time_1" }];

/**
 * The only module that reads or writes the `device_authorizations` collection. The pollers read
 * these documents instead of scanning `connections` (on FerretDB 1.24 any filter but `{_id}`
 * decodes the whole table): the collection holds only the device codes still waiting, so the
 * due-poll query stays small. Every write but the insert is made holding the connection's lease.
 */
export class DeviceAuthorizationStore {
  readonly collection: Collection<DeviceAuthorizationDocument>;

  constructor(db: Db) {
    this.collection = db.collection<DeviceAuthorizationDocument>("device_authorizations");
  }

  async insert(document: DeviceAuthorizationDocument): Promise<void> {
    await this.collection.insertOne(document);
  }

  async findById(connectionId: string): Promise<DeviceAuthorizationDocument | null> {
    return this.collection.findOne({ _id: connectionId });
  }

  /** The device codes whose next poll is due by `now`, earliest first. */
  async due(now: Date, limit: number): Promise<DeviceAuthorizationDocument[]> {
    return this.collection.find({ next_poll_time: { $lte: now } }).sort({ next_poll_time: 1 }).limit(limit).toArray();
  }

  /** Sets when the next poll is due, and the interval from now on. Call it holding the lease. */
  async schedule(connectionId: string, nextPollTime: Date, intervalSeconds: number): Promise<void> {
    await this.collection.updateOne({ _id: connectionId }, { $set: { next_poll_time: nextPollTime, interval_seconds: intervalSeconds } });
  }

  /** Every waiting device code's ID, for re-encryption (a small collection). */
  async ids(): Promise<string[]> {
    return (await this.collection.find({}, { projection: { _id: 1 } }).toArray()).map((document) => document._id);
  }

  /** Moves one device code to the primary key. Call it holding the connection's lease. */
  async reencrypt(connectionId: string, box: SecretBox, context: (connectionId: string, field: string) => string): Promise<boolean> {
    const document = await this.collection.findOne({ _id: connectionId });
    const next = document === null ? undefined : reencrypted(box, document.device_code, context(connectionId, "device_code"));
    if (next === undefined) return false;
    await this.collection.updateOne({ _id: connectionId }, { $set: { device_code: next } });
    return true;
  }

  /** The connection was approved, denied, expired or deleted: nothing waits any more. */
  async remove(connectionId: string): Promise<void> {
    await this.collection.deleteOne({ _id: connectionId });
  }
}
