import { type Collection, type Db, type IndexDescription, MongoServerError } from "mongodb";
import { dropIfPresent, insertUnlessPresent, isNamespaceNotFound } from "./database.js";
import type { EventDocument } from "./event-document.js";
import { connectionStream, EventIndex, organisationStream } from "./event-index.js";
import { DEFAULT_LISTING_READS, ListingReads } from "./listing-reads.js";
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

/** The default of BROKER_EVENT_RETENTION. */
export const DEFAULT_EVENT_RETENTION_MS = 30 * 86_400_000;
/** `events` holds the events published since the last rotation, then is renamed `events_until_<end>`. */
const ARCHIVE = /^events_until_([0-9a-z]+)$/;

/** When the current `events` collection began (one document, `_id: "current"`). */
interface EventWindowDocument {
  _id: string;
  since: Date;
}

/**
 * The only module that reads or writes the `events` collection and its archives: the history of every published
 * event, written once when published and once more when its webhook delivery finishes. The
 * background loops never scan it: what they poll is kept in small collections of their own, the
 * deliveries still to make (WebhookDeliveryStore) and the events of the last minutes
 * (RecentEventStore), since on FerretDB 1.24 any filter but `{_id}` reads the whole table.
 */
export class EventStore {
  readonly collection: Collection<EventDocument>;
  readonly deliveries: WebhookDeliveryStore;
  readonly recent: RecentEventStore;
  /** Each organisation's and connection's events by exact `_id` (what ListConnectionEvents reads). */
  readonly index: EventIndex;
  readonly #db: Db;
  /** History windows whose index is known complete (it stays so). */
  readonly #indexed = new Set<string>();
  readonly #windows: Collection<EventWindowDocument>;
  /** BROKER_EVENT_RETENTION: an archive is dropped once its newest event is this old. */
  readonly #retentionMs: number;
  readonly #reads: ListingReads;

  /** `reads`: where listings' finds wait their turn, shared with the connection listings. */
  constructor(db: Db, retentionMs = DEFAULT_EVENT_RETENTION_MS, reads = new ListingReads(DEFAULT_LISTING_READS)) {
    this.#db = db;
    this.#reads = reads;
    this.collection = db.collection<EventDocument>("events");
    this.deliveries = new WebhookDeliveryStore(db);
    this.recent = new RecentEventStore(db);
    this.index = new EventIndex(db);
    this.#windows = db.collection<EventWindowDocument>("event_windows");
    this.#retentionMs = retentionMs;
  }

  /** How long `events` collects before it is archived: a day, or a quarter of the retention when that is shorter. */
  get rotationMs(): number {
    return Math.min(86_400_000, Math.max(60_000, Math.floor(this.#retentionMs / 4)));
  }

  /**
   * Publishes an event once: a second relay of the same event is a no-op, except that it finishes
   * what a relay that crashed half-way left undone (each write is an insert that tolerates a copy
   * already there). A delivery is added only while the history says it is not finished, so a
   * late second relay does not deliver again.
   */
  async publish(event: EventDocument): Promise<void> {
    // A window that starts empty has every event's slots: its index is complete from the start.
    if (!this.#indexed.has("events")) {
      if (!(await this.index.complete("events")) && (await this.collection.findOne({}, { projection: { _id: 1 } })) === null) await this.index.markComplete("events");
      if (await this.index.complete("events")) this.#indexed.add("events");
    }
    // Slots first, so a crash cannot leave an event that no listing reaches (a second relay adds
    // slots again: listings show an event once).
    await this.index.add(event);
    const stored = (await insertUnlessPresent(this.collection, event)) ? event : ((await this.collection.findOne({ _id: event._id })) ?? event);
    if (stored.delivery === "pending") await this.deliveries.add(stored);
    await this.recent.add(stored);
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
    // The event may have been archived since it was published: its archive is updated instead.
    for (const history of [this.collection, ...(await this.#archives())]) {
      if ((await history.updateOne({ _id: id }, { $set: change })).matchedCount > 0) break;
    }
    await this.deliveries.remove(id);
  }

  /**
   * Event retention, without per-document deletes: `events` is renamed to an archive every
   * `rotationMs`, and an archive is dropped whole once its newest event is older than the
   * retention, unless a delivery of one of its events is still to make (the archive waits for
   * it). Safe to repeat and to run on several instances at once: the archive's name comes from
   * the window's end, so a second rename of the same window fails harmlessly. Returns false
   * (nothing left to do soon).
   */
  async rotate(now = new Date()): Promise<boolean> {
    let since: Date | undefined = (await this.#windows.findOne({ _id: "current" }))?.since;
    if (since === undefined) {
      // The window starts with the first event published (a database without events stays untouched).
      if ((await this.collection.findOne({}, { projection: { _id: 1 } })) === null) return false;
      await insertUnlessPresent(this.#windows, { _id: "current", since: now });
      since = (await this.#windows.findOne({ _id: "current" }))?.since ?? now;
    }
    while (since.getTime() + this.rotationMs <= now.getTime()) {
      const end: number = since.getTime() + this.rotationMs;
      await this.#renameIfPresent(`events_until_${end.toString(36)}`);
      since = new Date(end);
      // Every instance writes the same value: a lost update cannot undo a rotation.
      await this.#windows.updateOne({ _id: "current" }, { $max: { since } });
    }
    for (const archive of await this.#archives()) {
      const end = archiveEnd(archive.collectionName);
      if (end + this.#retentionMs > now.getTime()) continue;
      // An event still waiting for its webhook delivery keeps its archive (until that delivery ends).
      if ((await this.deliveries.collection.findOne({ publish_time: { $lt: new Date(end) } }, { projection: { _id: 1 } })) !== null) continue;
      await dropIfPresent(this.#db, archive.collectionName);
      await dropIfPresent(this.#db, this.index.window(archive.collectionName).collectionName);
      this.#indexed.delete(archive.collectionName);
    }
    return false;
  }

  async #renameIfPresent(name: string): Promise<void> {
    try {
      await this.collection.rename(name);
    } catch (error) {
      // Nothing published in the window, or another instance renamed it first.
      if (isNamespaceNotFound(error) || isNamespaceExists(error)) return;
      throw error;
    }
    for (const index of eventIndexes) await this.collection.createIndexes([index]);
    // The window's index goes with it (a slot claimed in between points to an event of the next
    // window: listings look for it there); the next window's index starts complete.
    try {
      await this.index.window("events").rename(this.index.window(name).collectionName);
    } catch (error) {
      if (!isNamespaceNotFound(error) && !isNamespaceExists(error)) throw error;
    }
    await this.index.markComplete("events");
  }

  /** The archives, newest first. */
  async #archives(): Promise<Array<Collection<EventDocument>>> {
    const collections = await this.#db.listCollections({}, { nameOnly: true }).toArray();
    return collections
      .map(({ name }) => name)
      .filter((name) => ARCHIVE.test(name))
      .sort((a, b) => archiveEnd(b) - archiveEnd(a))
      .map((name) => this.#db.collection<EventDocument>(name));
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

  /**
   * Newest first, strictly older than `beforeId` when given; one connection's when named. Reads
   * the organisation's (or the connection's) slots in the event index: what it holds, not what
   * the history holds.
   */
  async list(organisationId: string, connectionId: string | undefined, beforeId: string | undefined, limit: number): Promise<EventDocument[]> {
    // `events`, then the archives newest first, until no older archive can hold an event of the
    // page: an archive holds events published, so changed (UUIDv7 time), before its end. A copy
    // published twice (a relay cut short across a rotation) is shown once.
    const found = new Map<string, EventDocument>();
    const newestFirst = () => [...found.values()].sort((a, b) => (a._id < b._id ? 1 : a._id > b._id ? -1 : 0));
    const histories = [this.collection, ...(await this.#archives())];
    for (const history of histories) {
      const page = newestFirst();
      if (history !== this.collection && page.length >= limit && uuidv7Time(page[limit - 1]!._id) >= archiveEnd(history.collectionName)) break;
      for (const event of await this.#listWindow(history, histories, organisationId, connectionId, beforeId, limit)) found.set(event._id, event);
    }
    return newestFirst().slice(0, limit);
  }

  /** One window's page: from its index, or (a window from before the index) by its organisation filter. */
  async #listWindow(
    history: Collection<EventDocument>,
    histories: Array<Collection<EventDocument>>,
    organisationId: string,
    connectionId: string | undefined,
    beforeId: string | undefined,
    limit: number,
  ): Promise<EventDocument[]> {
    const name = history.collectionName;
    if (!this.#indexed.has(name) && (await this.index.complete(name))) this.#indexed.add(name);
    if (!this.#indexed.has(name)) {
      const query: Record<string, unknown> = { organisation_id: organisationId };
      if (connectionId !== undefined) query.connection_id = connectionId;
      if (beforeId !== undefined) query._id = { $lt: beforeId };
      return this.#reads.run(organisationId, () => history.find(query).sort({ _id: -1 }).limit(limit).toArray());
    }
    const stream = connectionId === undefined ? organisationStream(organisationId) : connectionStream(connectionId);
    const read = this.#reads.of(organisationId);
    // A slot's event is in its own window, or (claimed just before a rotation) in another.
    const fetch = (ids: string[]) =>
      Promise.all(
        ids.map(async (id) => {
          const event = await read(() => history.findOne({ _id: id }));
          if (event !== null) return event;
          const elsewhere = await Promise.all(histories.filter((other) => other !== history).map((other) => read(() => other.findOne({ _id: id }))));
          return elsewhere.find((other) => other !== null) ?? null;
        }),
      ).then((events) => events.filter((event) => event !== null));
    return this.index.newestFirst(name, stream, beforeId, limit, fetch, (event) => event.organisation_id === organisationId, read);
  }

  /**
   * Gives the events in `events` from before the event index their slots, once (a scan of
   * `events`: run at start-up, never per request). Archives from before it are listed by their
   * organisation filter until retention drops them.
   */
  async adoptIntoIndex(): Promise<number> {
    // Nothing stored: nothing to adopt (the first publish marks the window complete).
    if ((await this.index.complete("events")) || (await this.collection.findOne({}, { projection: { _id: 1 } })) === null) return 0;
    return this.index.adopt("events", this.collection);
  }

  /** Organisations that have events. */
  async organisationIds(): Promise<string[]> {
    const ids = await Promise.all([this.collection, ...(await this.#archives())].map((history) => history.distinct("organisation_id")));
    return [...new Set(ids.flat())];
  }
}

function isNamespaceExists(error: unknown): boolean {
  return error instanceof MongoServerError && (error.code === 48 || error.codeName === "NamespaceExists");
}

function archiveEnd(name: string): number {
  return parseInt(ARCHIVE.exec(name)?.[1] ?? "0", 36);
}

/** The milliseconds a UUIDv7 carries (its first 48 bits). */
function uuidv7Time(id: string): number {
  return parseInt(id.replaceAll("-", "").slice(0, 12), 16);
}
