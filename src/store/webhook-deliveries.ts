import type { Collection, Db, Filter, IndexDescription } from "mongodb";
import { insertUnlessPresent } from "./database.js";
import type { EventDocument } from "./event-document.js";

export const webhookDeliveryIndexes: IndexDescription[] = [
  { key: { next_attempt_time: 1 }, name: "next_attempt_time_1" },
];

/**
 * The only module that reads or writes the `webhook_deliveries` collection: a copy of each
 * published event whose webhook delivery is not finished, with its attempts so far. The
 * dispatcher's due-scan reads this collection, which holds only the deliveries still to make, not
 * every event ever published: on FerretDB 1.24 a filter such as `{delivery: "pending"}` reads and
 * decodes the whole collection it runs on. A finished delivery's outcome goes to `events` (see
 * EventStore.recordAttempt) and its copy here is deleted, a delete that scans only these rows.
 */
export class WebhookDeliveryStore {
  readonly collection: Collection<EventDocument>;

  constructor(db: Db) {
    this.collection = db.collection<EventDocument>("webhook_deliveries");
  }

  /** Adds a delivery to make; one already there is kept as it is (a second relay of the event). */
  async add(event: EventDocument): Promise<void> {
    await insertUnlessPresent(this.collection, event);
  }

  /** Due deliveries, oldest first, leaving out the organisations and events named in `skip`. */
  async findDue(now: Date, limit: number, skip: { organisationIds?: readonly string[]; eventIds?: readonly string[] }): Promise<EventDocument[]> {
    const filter: Filter<EventDocument> = { next_attempt_time: { $lte: now } };
    if (skip.organisationIds?.length) filter.organisation_id = { $nin: [...skip.organisationIds] };
    if (skip.eventIds?.length) filter._id = { $nin: [...skip.eventIds] };
    return this.collection.find(filter).sort({ next_attempt_time: 1 }).limit(limit).toArray();
  }

  /** Whether any delivery is still to make (perhaps later). */
  async any(): Promise<boolean> {
    return (await this.collection.findOne({}, { projection: { _id: 1 } })) !== null;
  }

  async findById(id: string): Promise<EventDocument | null> {
    return this.collection.findOne({ _id: id });
  }

  /** Records an attempt that leaves the delivery to make. Call it holding the event's lease. */
  async update(id: string, change: Partial<EventDocument>): Promise<void> {
    await this.collection.updateOne({ _id: id }, { $set: change });
  }

  /** The delivery is finished. Call it holding the event's lease. */
  async remove(id: string): Promise<void> {
    await this.collection.deleteOne({ _id: id });
  }
}
