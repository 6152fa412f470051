import { type Collection, type Db, type IndexDescription, MongoBulkWriteError } from "mongodb";
import { reencrypted } from "../crypto/reencrypt.js";
import { STATE_WINDOW_SECONDS, stateWindowAt } from "../oauth/state.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { Batcher } from "./batcher.js";
import { createIndex, dropIfPresent, insertUnlessPresent, OncePerKey } from "./database.js";

/**
 * A pending authorization attempt, keyed by the SHA-256 hash of its `state` (never the state
 * itself). `code_verifier` is a SecretBox ciphertext bound to the hash.
 */
export interface OAuthStateDocument {
  _id: string;
  organisation_id: string;
  connector_id: string;
  credential_id: string;
  client_id: string;
  redirect_uri: string;
  scopes: string[];
  code_verifier?: string;
  nonce?: string;
  return_url?: string;
  /** The end user the flow is bound to (RFC 9700 §2.1), when the caller gave one. */
  end_user_id?: string;
  /** A reconnect: the existing connection the flow re-authorizes. */
  connection_id?: string;
  /** The provider's connection-level template values, for the callback's token request. */
  connection_config?: Record<string, string>;
  create_time: Date;
  expire_time: Date;
}

export const oauthStateIndexes: IndexDescription[] = [
  // MongoDB deletes a state once `expire_time` has passed, a second line behind dropping whole
  // window collections; FerretDB v1 refuses TTL indexes and relies on the drop alone (no plain
  // index there: no query reads `expire_time`, and it was one more B-tree, ~40 % more bytes
  // written, on every Initialise's insert).
  { key: { expire_time: 1 }, name: "expire_time_ttl", expireAfterSeconds: 0 },
];

/** The states created in one window (`oauth_states_w<window>`, see src/oauth/state.ts). */
const WINDOW = /^oauth_states_w([0-9a-z]+)$/;
/**
 * Windows and legacy collections are dropped this long after their last state expired, and a
 * state may name a window this far in the future: for clocks that differ between instances.
 */
const CLOCK_SLACK_MS = 60_000;
/** Legacy collections are checked for live states (a scan) at most this often. */
const LEGACY_CHECK_MS = 60_000;

/**
 * The only module that reads or writes the `oauth_states` collections.
 *
 * A callback's cost must not grow with the number of pending states, on FerretDB too. FerretDB
 * 1.24's SQLite backend read the table row by row for every find, update and delete by `_id`
 * until the wrapper indexed the expression its queries use (tools/ferretdb/idindex.go; a window
 * is indexed as FerretDB creates it); it still decodes every row for any other filter and has
 * no TTL indexes. So states are kept in small collections that a request can name:
 * - A state is `<window>.<random>`, the window being its creation time in STATE_WINDOW_SECONDS
 *   steps (src/oauth/state.ts). It is inserted (as its hash) straight into that window's
 *   collection, `oauth_states_w<window>`: no later copy or rename competes for the single writer.
 * - A callback reads the window from the state and looks the hash up in that one collection,
 *   which holds only the states created in those seconds: at most the Initialise rate times
 *   STATE_WINDOW_SECONDS rows, however many flows are pending. A window outside
 *   [now - state TTL - window - slack, now + slack] is refused without a database call, so a
 *   forged state cannot make the broker touch arbitrary collections.
 * - Consuming a state is a unique insert of a marker, `consumed:<hash>`, in the same collection:
 *   the insert that succeeds wins, on MongoDB and FerretDB alike (FerretDB v1's findOneAndDelete
 *   and conditional updates let several racers win).
 * - `maintain` drops a window's collection whole once every state in it has expired.
 * One code path for both servers; on MongoDB each window also gets a TTL index.
 *
 * Legacy (states created before windows, without a prefix): they are in `oauth_states`,
 * `oauth_states_moving_*` or `oauth_states_until_*`, and are read and consumed as the previous
 * version did (see #findLegacy) until `maintain` drops those collections once nothing in them is live.
 */
export class OAuthStateStore {
  readonly #db: Db;
  readonly #maxTtlMs: number;
  // Every InitialiseOAuth2Connection inserts one state: concurrent ones share an insertMany per window.
  readonly #inserts: Batcher<OAuthStateDocument, void>;
  /** Each window's index creation (and so its collection's, on MongoDB), sent once per instance, before its first insert. */
  readonly #windowsPrepared = new OncePerKey();
  #legacyCheckedAt = 0;

  /** @param stateTtlSeconds the longest TTL a state may have (BROKER_STATE_TTL): bounds which windows are live. */
  constructor(db: Db, stateTtlSeconds = 600) {
    this.#db = db;
    this.#maxTtlMs = stateTtlSeconds * 1000;
    this.#inserts = new Batcher((documents) => this.#insertByWindow(documents), { maxBatch: 500, maxConcurrent: 1 });
  }

  /** The collection of the states created in `window` (stateWindowAt of their `create_time`). */
  collectionFor(window: string): Collection<OAuthStateDocument> {
    return this.#db.collection<OAuthStateDocument>(`oauth_states_w${window}`);
  }

  /** Stores an attempt in the window of its `create_time`, which must be the time its state was made at. */
  async insert(document: OAuthStateDocument): Promise<void> {
    await this.#inserts.call(document);
  }

  /**
   * Consumes the attempt and returns it, so of two callbacks racing with one state exactly one
   * gets it: the one whose marker insert succeeded (see the class comment). An expired attempt is
   * not returned: windows are dropped lazily, so expiry is checked here as well.
   * @param window what stateWindowOf read from the state (undefined: a legacy state; null: forged).
   */
  async consumeByHash(stateHash: string, window: string | undefined | null, now = new Date()): Promise<OAuthStateDocument | null> {
    if (window === undefined) return this.#consumeLegacy(stateHash, now);
    if (window === null || !this.#isLive(window, now)) return null;
    const collection = this.collectionFor(window);
    const document = await collection.findOne({ _id: stateHash });
    if (document === null || document.expire_time <= now) return null;
    const marker = { _id: `consumed:${stateHash}`, expire_time: document.expire_time } as OAuthStateDocument;
    return (await insertUnlessPresent(collection, marker)) ? document : null;
  }

  /**
   * Whether an unexpired, unconsumed attempt with this hash is waiting (reads only; nothing is
   * consumed): lets a genuine callback past a rate limit that forged ones emptied.
   */
  async isPending(stateHash: string, window: string | undefined | null, now = new Date()): Promise<boolean> {
    if (window === undefined) return this.#isPendingLegacy(stateHash, now);
    if (window === null || !this.#isLive(window, now)) return false;
    // Two exact `_id` reads, not one `$in`: FerretDB 1.24 pushes only an exact `_id` down to SQLite
    // (where the wrapper's index serves it) and decodes the whole window for an `$in`.
    const collection = this.collectionFor(window);
    const [state, marker] = await Promise.all([
      collection.findOne({ _id: stateHash }, { projection: { _id: 1, expire_time: 1 } }),
      collection.findOne({ _id: `consumed:${stateHash}` }, { projection: { _id: 1 } }),
    ]);
    return state !== null && state.expire_time > now && marker === null;
  }

  /**
   * Background work, for every instance (each call is safe to repeat and to run on several at
   * once): drops the collections of windows whose states have all expired, and legacy ones.
   * Returns whether anything is left to do soon (never: drops are single commands).
   */
  async maintain(now = new Date()): Promise<boolean> {
    const checkLegacy = now.getTime() - this.#legacyCheckedAt >= LEGACY_CHECK_MS;
    if (checkLegacy) this.#legacyCheckedAt = now.getTime();
    for (const name of await this.#names()) {
      const window = WINDOW.exec(name);
      const bucket = LEGACY_BUCKET.exec(name);
      if (window !== null) {
        if (windowEndMs(window[1]!) + this.#maxTtlMs + CLOCK_SLACK_MS < now.getTime()) {
          await dropIfPresent(this.#db, name);
          this.#windowsPrepared.forget(window[1]!);
        }
      } else if (bucket !== null) {
        // Legacy: a bucket holds states and markers that expire before its end.
        if (Number(bucket[1]) * 1000 + CLOCK_SLACK_MS < now.getTime()) await dropIfPresent(this.#db, name);
      } else if (checkLegacy) {
        // Legacy `oauth_states` and moving generations: no more inserts go there; dropped once nothing in them is live.
        const live = await this.#db
          .collection<OAuthStateDocument>(name)
          .findOne({ expire_time: { $gt: new Date(now.getTime() - CLOCK_SLACK_MS) } }, { projection: { _id: 1 } });
        if (live === null) await dropIfPresent(this.#db, name);
      }
    }
    return false;
  }

  /** Moves every stored PKCE verifier to the primary key, in every window (and legacy collection). Returns how many moved. */
  async reencrypt(box: SecretBox, context: (stateHash: string) => string): Promise<number> {
    let moved = 0;
    for (const name of await this.#names()) {
      const collection = this.#db.collection<OAuthStateDocument>(name);
      for await (const document of collection.find({ code_verifier: { $exists: true } }, { projection: { code_verifier: 1 } })) {
        const next = reencrypted(box, document.code_verifier!, context(document._id));
        if (next === undefined) continue;
        const { modifiedCount } = await collection.updateOne({ _id: document._id, code_verifier: document.code_verifier }, { $set: { code_verifier: next } });
        moved += modifiedCount;
      }
    }
    return moved;
  }

  /** Whether a state of this window can still be unexpired: refuses forged windows before any database call. */
  #isLive(window: string, now: Date): boolean {
    const start = windowEndMs(window) - STATE_WINDOW_SECONDS * 1000;
    return start >= now.getTime() - this.#maxTtlMs - STATE_WINDOW_SECONDS * 1000 - CLOCK_SLACK_MS && start <= now.getTime() + CLOCK_SLACK_MS;
  }

  /**
   * One unordered insertMany per window (a batch spanning a window boundary sends two). A failure
   * that leaves a window's outcome unknown fails every call of that window (see insertEach).
   */
  async #insertByWindow(documents: OAuthStateDocument[]): Promise<(void | Error)[]> {
    const byWindow = new Map<string, number[]>();
    documents.forEach((document, i) => {
      const window = stateWindowAt(document.create_time);
      byWindow.set(window, [...(byWindow.get(window) ?? []), i]);
    });
    const outcomes: (void | Error)[] = new Array(documents.length);
    for (const [window, indexes] of byWindow) {
      try {
        await this.#prepare(window);
        const results = await insertEach(this.collectionFor(window), indexes.map((i) => documents[i]!));
        for (const [j, i] of indexes.entries()) outcomes[i] = results[j];
      } catch (error) {
        const failure = error instanceof Error ? error : new Error(String(error));
        for (const i of indexes) outcomes[i] = failure;
      }
    }
    return outcomes;
  }

  /** Creates a window's expiry index where the server has TTL indexes, once per instance. */
  #prepare(window: string): Promise<void> {
    return this.#windowsPrepared.run(window, async () => {
      // MongoDB's TTL index as a second line (FerretDB refuses it: nothing, its first insert creates the collection).
      for (const index of oauthStateIndexes) await createIndex(this.collectionFor(window), index, false);
    });
  }

  /** Window and legacy collections, as the server lists them now. */
  async #names(): Promise<string[]> {
    const collections = await this.#db.listCollections({}, { nameOnly: true }).toArray();
    return collections.map((c) => c.name).filter((name) => WINDOW.test(name) || name === LEGACY_CURRENT || LEGACY_MOVING.test(name) || LEGACY_BUCKET.test(name));
  }

  // Legacy: states without a window prefix, stored by the previous version. Read and consumed
  // exactly as it did (a marker in the state's expiry bucket partition decides), never written.

  async #consumeLegacy(stateHash: string, now: Date): Promise<OAuthStateDocument | null> {
    const document = await this.#findLegacy(stateHash, now);
    if (document === null || document.expire_time <= now) return null;
    const marker = { _id: `consumed:${stateHash}`, expire_time: document.expire_time } as OAuthStateDocument;
    return (await insertUnlessPresent(this.#legacyBucket(document.expire_time, stateHash), marker)) ? document : null;
  }

  async #isPendingLegacy(stateHash: string, now: Date): Promise<boolean> {
    const document = await this.#findLegacy(stateHash, now);
    if (document === null || document.expire_time <= now) return false;
    const consumed = await this.#legacyBucket(document.expire_time, stateHash).findOne({ _id: `consumed:${stateHash}` }, { projection: { _id: 1 } });
    return consumed === null;
  }

  /** A legacy state: in `oauth_states`, the partition of a live bucket, or a moving generation (whichever exist). */
  async #findLegacy(stateHash: string, now: Date): Promise<OAuthStateDocument | null> {
    const names = await this.#names();
    const partition = String(partitionOf(stateHash));
    const live = names.filter((name) => {
      const bucket = LEGACY_BUCKET.exec(name);
      return bucket !== null && Number(bucket[1]) * 1000 > now.getTime() && bucket[2] === partition;
    });
    const current = names.filter((name) => name === LEGACY_CURRENT);
    for (const group of [current, live, names.filter((name) => LEGACY_MOVING.test(name))]) {
      const found = await Promise.all(group.map((name) => this.#db.collection<OAuthStateDocument>(name).findOne({ _id: stateHash })));
      const document = found.find((candidate) => candidate !== null);
      if (document !== undefined && document !== null) return document;
    }
    return null;
  }

  #legacyBucket(expireTime: Date, stateHash: string): Collection<OAuthStateDocument> {
    const end = (Math.floor(expireTime.getTime() / 1000 / LEGACY_BUCKET_SECONDS) + 1) * LEGACY_BUCKET_SECONDS;
    return this.#db.collection<OAuthStateDocument>(`oauth_states_until_${end}_p${partitionOf(stateHash)}`);
  }
}

/** When a window ends, in epoch milliseconds. */
function windowEndMs(window: string): number {
  return (parseInt(window, 36) + 1) * STATE_WINDOW_SECONDS * 1000;
}

// Legacy collection names of the previous version (generations renamed away, expiry buckets split by hash).
const LEGACY_CURRENT = "oauth_states";
const LEGACY_MOVING = /^oauth_states_moving_(\d+)_[a-z0-9]+$/;
const LEGACY_BUCKET = /^oauth_states_until_(\d+)_p(\d+)$/;
const LEGACY_BUCKET_SECONDS = 600;
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const PARTITIONS = 64;

/** Legacy: the partition of a state hash: its first base64url character's value (hashes are uniform in it). */
function partitionOf(stateHash: string): number {
  const value = BASE64URL.indexOf(stateHash.charAt(0));
  return value >= 0 ? value : stateHash.charCodeAt(0) % PARTITIONS;
}

/**
 * One unordered insertMany for the batch; a document the server refused fails its own call only.
 * Anything else fails every call: a lost connection (the driver throws MongoBulkWriteError for
 * that too, with no write errors), a write concern error, or a count that does not add up, since
 * then nothing is known to be stored. Regression: a lost connection once passed for success, and
 * URLs were handed out whose states were never stored.
 */
async function insertEach(collection: Collection<OAuthStateDocument>, documents: OAuthStateDocument[]): Promise<(void | Error)[]> {
  try {
    const { insertedCount } = await collection.insertMany(documents, { ordered: false });
    if (insertedCount !== documents.length) throw new Error(`the server stored ${insertedCount} of ${documents.length} states`);
    return documents.map(() => undefined);
  } catch (error) {
    if (!(error instanceof MongoBulkWriteError)) throw error;
    const refused = new Set([error.writeErrors].flat().map((writeError) => writeError.index));
    const accountedFor = refused.size > 0 && error.insertedCount + refused.size === documents.length;
    if (!accountedFor || error.result.getWriteConcernError() !== undefined) throw error;
    return documents.map((_, i) => (refused.has(i) ? error : undefined));
  }
}
