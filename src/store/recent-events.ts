import type { Collection, Db, IndexDescription } from "mongodb";
import { createIndex, dropIfPresent, insertUnlessPresent, OncePerKey } from "./database.js";
import type { EventDocument } from "./event-document.js";

/** Events are kept for the feed in one collection per this many milliseconds of publish time. */
const WINDOW_MS = 60_000;
/**
 * How far back a feed poll reads at most, and how far ahead of this instance's clock another's
 * publish time may be: instances' clocks must agree to within this (the state windows assume a
 * minute, see OAuthStateStore).
 */
const CLOCK_SLACK_MS = 60_000;
/** A window is dropped this long after it ends (longer than any poll reads back). */
const KEEP_MS = 2 * CLOCK_SLACK_MS;
const WINDOW = /^events_recent_w([0-9a-z]+)$/;

export const recentEventIndexes: IndexDescription[] = [
  { key: { organisation_id: 1, publish_time: 1 }, name: "organisation_id_1_publish_time_1" },
];

/**
 * The only module that reads or writes the `events_recent_w<window>` collections: a copy of each
 * event published in the last few minutes, for WatchConnectionEvents. FerretDB has no change
 * streams, so the feed polls; on FerretDB 1.24 its filter (`organisation_id`, `publish_time`)
 * reads and decodes the whole collection it runs on, which for `events` grew with every event
 * ever published. Each window collection holds the events published in one WINDOW_MS, and is
 * dropped whole once no poll reads it (no per-document deletes), so a poll reads at most the
 * events of the last two or three minutes, however many are stored in `events`.
 */
export class RecentEventStore {
  readonly #db: Db;
  /** Each window's collection and index creation, sent once per instance, before its first insert. */
  readonly #prepared = new OncePerKey();

  constructor(db: Db) {
    this.#db = db;
  }

  collectionFor(window: string): Collection<EventDocument> {
    return this.#db.collection<EventDocument>(`events_recent_w${window}`);
  }

  /** Adds a published event to the window of its publish time (a second add is a no-op). */
  async add(event: EventDocument): Promise<void> {
    const window = windowAt(event.publish_time.getTime());
    await this.#prepared.run(window, async () => {
      for (const index of recentEventIndexes) await createIndex(this.collectionFor(window), index);
    });
    await insertUnlessPresent(this.collectionFor(window), event);
  }

  /**
   * The organisation's events published at or after `since`, by publish time, at most `limit`.
   * Reads back CLOCK_SLACK_MS at most, whatever `since` is.
   */
  async publishedSince(organisationId: string, since: Date, limit: number, now = new Date()): Promise<EventDocument[]> {
    const from = new Date(Math.max(since.getTime(), now.getTime() - CLOCK_SLACK_MS));
    const found: EventDocument[] = [];
    for (let start = windowStartMs(from.getTime()); start <= now.getTime() + CLOCK_SLACK_MS; start += WINDOW_MS) {
      const page = await this.collectionFor(windowAt(start))
        .find({ organisation_id: organisationId, publish_time: { $gte: from } })
        .sort({ publish_time: 1, _id: 1 })
        .limit(limit)
        .toArray();
      found.push(...page);
    }
    return found.sort(byPublishTime).slice(0, limit);
  }

  /**
   * Background work, safe to repeat and to run on several instances at once: drops the windows no
   * poll reads any more. Returns whether anything is left to do soon (never: drops are single
   * commands).
   */
  async maintain(now = new Date()): Promise<boolean> {
    const collections = await this.#db.listCollections({}, { nameOnly: true }).toArray();
    for (const { name } of collections) {
      const window = WINDOW.exec(name)?.[1];
      if (window === undefined || (parseInt(window, 36) + 1) * WINDOW_MS + KEEP_MS >= now.getTime()) continue;
      await dropIfPresent(this.#db, name);
      this.#prepared.forget(window);
    }
    return false;
  }
}

function windowAt(ms: number): string {
  return Math.floor(ms / WINDOW_MS).toString(36);
}

function windowStartMs(ms: number): number {
  return Math.floor(ms / WINDOW_MS) * WINDOW_MS;
}

function byPublishTime(a: EventDocument, b: EventDocument): number {
  return a.publish_time.getTime() - b.publish_time.getTime() || (a._id < b._id ? -1 : a._id > b._id ? 1 : 0);
}
