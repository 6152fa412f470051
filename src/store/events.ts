import type { Collection, Db, IndexDescription } from "mongodb";
import { insertUnlessPresent } from "./database.js";
import type { EventDocument } from "./event-document.js";
import { RecentEventStore } from "./recent-events.js";
import { WebhookDeliveryStore } from "./webhook-deliveries.js";

export const eventIndexes: IndexDescription[] = [
  // Start-up's scan for deliveries pending from before `webhook_deliveries` existed.
  { key: { delivery: 1, next_attempt_time: 1 }, name: "delivery_1_next_attempt_time_1" },
  { key: { organisation_id: 1, publish_time: 1 }, name: "organisation_id_1_publish_time_1" },
  // Past events, newest first (UUIDv7 IDs sort by the time of the change): an organisation's and
  // one connection's (its timeline).
  { key: { organisation_id: 1, _id: -1 }, name: "organisation_id_1__id_-1" },
  { key: { connection_id: 1, _id: -1 }, name: "connection_id_1__id_-1" },
];

/**
 * The only module that reads or writes the `events` collection: the history of every published
 * event, written once when published and once more when its webhook delivery finishes. The
 * background loops never scan it: what they poll is kept in small collections of their own, the
 * deliveries still to make (WebhookDeliveryStore) and the events of the last minutes
 * (RecentEventStore), since on FerretDB 1.24 any filter but `{_id}` reads the whole table.
 */
export class EventStore {
  readonly collection: Collection<EventDocument>;
  readonly deliveries: WebhookDeliveryStore;
  readonly recent: RecentEventStore;

  constructor(db: Db) {
    this.collection = db.collection<EventDocument>("events");
    this.deliveries = new WebhookDeliveryStore(db);
    this.recent = new RecentEventStore(db);
  }

  /**
   * Publishes an event once: a second relay of the same event is a no-op, except that it finishes
   * what a relay that crashed half-way left undone (each write is an insert that tolerates a copy
   * already there). A delivery is added only while the history says it is not finished, so a
   * late second relay does not deliver again.
   */
  async publish(event: EventDocument): Promise<void> {
    const stored = (await insertUnlessPresent(this.collection, event)) ? event : ((await this.collection.findOne({ _id: event._id })) ?? event);
    if (stored.delivery === "pending") await this.deliveries.add(stored);
    await this.recent.add(stored);
  }

  /** Due deliveries, oldest first, leaving out the organisations and events named in `skip`. */
  async findDue(
    now: Date,
    limit: number,
    skip: { organisationIds?: readonly string[]; eventIds?: readonly string[] } = {},
  ): Promise<EventDocument[]> {
    return this.deliveries.findDue(now, limit, skip);
  }

  /** Whether any delivery is still waiting (for a retry, perhaps later). */
  async hasPending(): Promise<boolean> {
    return this.deliveries.any();
  }

  /** A delivery still to make, as its attempts so far left it (null once finished). */
  async findPendingDelivery(id: string): Promise<EventDocument | null> {
    return this.deliveries.findById(id);
  }

  /**
   * Records a delivery attempt's outcome. Call it holding the event's lease. An attempt that
   * leaves the delivery pending changes only the small `webhook_deliveries` copy; a finished one
   * (delivered, failed, no webhook) is written to the history, then the copy is dropped (a crash
   * in between means one more delivery, as a crash after the POST always did).
   */
  async recordAttempt(id: string, change: Partial<EventDocument>): Promise<void> {
    if (change.delivery === undefined || change.delivery === "pending") {
      await this.deliveries.update(id, change);
      return;
    }
    await this.collection.updateOne({ _id: id }, { $set: change });
    await this.deliveries.remove(id);
  }

  /**
   * Copies the deliveries the history has as pending into `webhook_deliveries` (those recorded
   * before it existed). A scan of every event: run once at start-up, never per request.
   */
  async adoptPendingDeliveries(): Promise<number> {
    let adopted = 0;
    for await (const event of this.collection.find({ delivery: "pending" })) {
      await this.deliveries.add(event);
      adopted++;
    }
    return adopted;
  }

  /** The organisation's events published at or after `since` (the last minutes only; see RecentEventStore). */
  async publishedSince(organisationId: string, since: Date, limit: number): Promise<EventDocument[]> {
    return this.recent.publishedSince(organisationId, since, limit);
  }

  /** Newest first, strictly older than `beforeId` when given; one connection's when named. */
  async list(organisationId: string, connectionId: string | undefined, beforeId: string | undefined, limit: number): Promise<EventDocument[]> {
    const query: Record<string, unknown> = { organisation_id: organisationId };
    if (connectionId !== undefined) query.connection_id = connectionId;
    if (beforeId !== undefined) query._id = { $lt: beforeId };
    return this.collection.find(query).sort({ _id: -1 }).limit(limit).toArray();
  }

  /** Organisations that have events. */
  async organisationIds(): Promise<string[]> {
    return this.collection.distinct("organisation_id");
  }
}
