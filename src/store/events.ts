import { type Collection, type Db, type IndexDescription, MongoServerError } from "mongodb";
import type { ConnectionEventType, ConnectionStatus } from "./connections.js";

export type DeliveryState = "pending" | "delivered" | "no_webhook" | "failed";

/** A published connection event, and the state of its webhook delivery. */
export interface EventDocument {
  _id: string;
  type: ConnectionEventType;
  organisation_id: string;
  connection_id: string;
  connector_id: string;
  credential_id: string;
  status?: ConnectionStatus;
  status_reason?: string;
  /** When the change happened. */
  create_time: Date;
  /** When the relay published it here; WatchConnectionEvents follows this. */
  publish_time: Date;
  delivery: DeliveryState;
  attempts: number;
  next_attempt_time: Date;
  last_error?: string;
  delivered_time?: Date;
}

export const eventIndexes: IndexDescription[] = [
  { key: { delivery: 1, next_attempt_time: 1 }, name: "delivery_1_next_attempt_time_1" },
  { key: { organisation_id: 1, publish_time: 1 }, name: "organisation_id_1_publish_time_1" },
  // Past events, newest first (UUIDv7 IDs sort by the time of the change): an organisation's and
  // one connection's (its timeline).
  { key: { organisation_id: 1, _id: -1 }, name: "organisation_id_1__id_-1" },
  { key: { connection_id: 1, _id: -1 }, name: "connection_id_1__id_-1" },
];

/** The only module that reads or writes the `events` collection. */
export class EventStore {
  readonly collection: Collection<EventDocument>;

  constructor(db: Db) {
    this.collection = db.collection<EventDocument>("events");
  }

  /** Publishes an event once: a second relay of the same event is a no-op. */
  async publish(event: EventDocument): Promise<void> {
    try {
      await this.collection.insertOne(event);
    } catch (error) {
      if (!(error instanceof MongoServerError && error.code === 11000)) throw error;
    }
  }

  /** Due deliveries, oldest first, leaving out the organisations and events named in `skip`. */
  async findDue(
    now: Date,
    limit: number,
    skip: { organisationIds?: readonly string[]; eventIds?: readonly string[] } = {},
  ): Promise<EventDocument[]> {
    const filter: Record<string, unknown> = { delivery: "pending", next_attempt_time: { $lte: now } };
    if (skip.organisationIds?.length) filter.organisation_id = { $nin: skip.organisationIds };
    if (skip.eventIds?.length) filter._id = { $nin: skip.eventIds };
    return this.collection
      .find(filter)
      .sort({ next_attempt_time: 1 })
      .limit(limit)
      .toArray();
  }

  /** Whether any delivery is still waiting (for a retry, perhaps later). */
  async hasPending(): Promise<boolean> {
    return (await this.collection.findOne({ delivery: "pending" }, { projection: { _id: 1 } })) !== null;
  }

  async findById(id: string): Promise<EventDocument | null> {
    return this.collection.findOne({ _id: id });
  }

  /** Records a delivery attempt's outcome. Call it holding the event's lease. */
  async recordAttempt(id: string, change: Partial<EventDocument>): Promise<void> {
    await this.collection.updateOne({ _id: id }, { $set: change });
  }

  async publishedSince(organisationId: string, since: Date, limit: number): Promise<EventDocument[]> {
    return this.collection
      .find({ organisation_id: organisationId, publish_time: { $gte: since } })
      .sort({ publish_time: 1, _id: 1 })
      .limit(limit)
      .toArray();
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
