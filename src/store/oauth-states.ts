import { randomBytes } from "node:crypto";
import { type Collection, type Db, type IndexDescription, MongoBulkWriteError } from "mongodb";
import { reencrypted } from "../crypto/reencrypt.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { Batcher } from "./batcher.js";
import { createIndex, isDuplicateKey, isNamespaceNotFound } from "./database.js";

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
  // MongoDB deletes a state once `expire_time` has passed; FerretDB gets a periodic sweep. Both
  // only ever see the current generation (at most ROTATE_AFTER states per instance), see below.
  { key: { expire_time: 1 }, name: "expire_time_ttl", expireAfterSeconds: 0 },
];

/** The current generation: every insert goes here. */
const CURRENT = "oauth_states";
/** A former current generation, renamed away, whose states are being copied to their buckets. */
const MOVING = /^oauth_states_moving_(\d+)_[a-z0-9]+$/;
/**
 * States (copied) and consumption markers whose `expire_time` is before the end (epoch seconds),
 * split by the first character of the state hash into PARTITIONS, so a lookup reads 1/64 of them.
 */
const BUCKET = /^oauth_states_until_(\d+)_p(\d+)$/;
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const PARTITIONS = 64;
/** The current generation is renamed away after this many inserts by one instance. */
export const ROTATE_AFTER = 500;
/** Width of an expiry bucket: the default state TTL, so a live state is in one of two buckets. */
const BUCKET_SECONDS = 600;
/** A moving generation is copied once this long after its rename (inserts that resolved the old name have landed)… */
const COPY_AFTER_MS = 2_000;
/** …and copied again, then dropped, this long after it. */
const DROP_AFTER_MS = 10_000;
/** Buckets are dropped this long after their end, for clocks that differ between instances. */
const CLOCK_SLACK_MS = 60_000;
/** Documents per insertMany when copying, so no copy holds FerretDB's single writer for long. */
const COPY_CHUNK = 100;

/**
 * The only module that reads or writes the `oauth_states` collections.
 *
 * A callback's cost must not grow with the number of pending states, on FerretDB too. FerretDB
 * 1.24's SQLite backend reads the table row by row for every find, update and delete by `_id`
 * (its `_id` index is on another expression than the one its queries use; a find stops at the
 * first match), and it has no TTL indexes; only inserts (the unique index) and collection-level
 * operations (rename, drop) do not depend on the size. So requests only ever read and delete in
 * small collections:
 * - Inserts go to `oauth_states`, the current generation. After ROTATE_AFTER inserts this
 *   instance renames it away (`oauth_states_moving_<ms>_<id>`, a metadata change) and a new one
 *   starts, so it holds at most ROTATE_AFTER states per instance.
 * - Maintenance copies a moving generation's states to expiry buckets split by the hash's first
 *   character, `oauth_states_until_<epoch s>_p<0-63>` (BUCKET_SECONDS wide), then drops it. A
 *   bucket is dropped whole once its end has passed: every document in it has expired.
 * - Consuming a state is a unique insert of a marker, `consumed:<hash>`, in the state's bucket
 *   partition: the insert that succeeds wins, on MongoDB and FerretDB alike (FerretDB v1's
 *   findOneAndDelete and conditional updates let several racers win). Every racer picks the same
 *   collection, since they read the same `expire_time`. A state still in the current generation
 *   is also deleted there (a bounded read).
 * A lookup reads the current generation, then the partition of each live bucket (two with the
 * default TTL), then, for a state not found there, the moving generations: a constant number of
 * finds, each reading at most 1/64 of the pending states of one bucket. One code path for both
 * servers; on MongoDB the TTL indexes stay as a second line.
 */
export class OAuthStateStore {
  /** The current generation (`oauth_states`). */
  readonly collection: Collection<OAuthStateDocument>;
  readonly #db: Db;
  // Every InitialiseOAuth2Connection inserts one state: concurrent ones share an insertMany.
  readonly #inserts: Batcher<OAuthStateDocument, void>;
  readonly #onRotationDue: () => void;
  #insertedSinceRotation = 0;
  /** The states this instance already copied out of each moving generation. */
  readonly #copied = new Map<string, Set<string>>();
  readonly #bucketsIndexed = new Set<string>();

  /** @param onRotationDue called when this instance's inserts filled the current generation: run `maintain` soon. */
  constructor(db: Db, onRotationDue: () => void = () => {}) {
    this.#db = db;
    this.collection = db.collection<OAuthStateDocument>(CURRENT);
    this.#onRotationDue = onRotationDue;
    this.#inserts = new Batcher((documents) => insertEach(this.collection, documents), { maxBatch: 500, maxConcurrent: 1 });
  }

  async insert(document: OAuthStateDocument): Promise<void> {
    await this.#inserts.call(document);
    if (++this.#insertedSinceRotation === ROTATE_AFTER) this.#onRotationDue();
  }

  /**
   * Consumes the attempt and returns it, so of two callbacks racing with one state exactly one
   * gets it: the one whose marker insert succeeded (see the class comment). An expired attempt is
   * not returned: TTL deletion and the sweep are lazy, so expiry is checked here as well.
   */
  async consumeByHash(stateHash: string, now = new Date()): Promise<OAuthStateDocument | null> {
    let document = await this.collection.findOne({ _id: stateHash });
    const inCurrent = document !== null;
    document ??= await this.#findMoved(stateHash, now);
    if (document === null) return null;
    if (document.expire_time > now) {
      try {
        await this.#bucket(document.expire_time, stateHash).insertOne({ _id: `consumed:${stateHash}`, expire_time: document.expire_time } as OAuthStateDocument);
      } catch (error) {
        if (isDuplicateKey(error)) return null;
        throw error;
      }
    }
    // Only tidies up: the marker decided. Reads one generation at most.
    if (inCurrent) await this.collection.deleteOne({ _id: stateHash });
    return document.expire_time > now ? document : null;
  }

  /**
   * Whether an unexpired, unconsumed attempt with this hash is waiting (reads only; nothing is
   * consumed): lets a genuine callback past a rate limit that forged ones emptied.
   */
  async isPending(stateHash: string, now = new Date()): Promise<boolean> {
    const document = (await this.collection.findOne({ _id: stateHash })) ?? (await this.#findMoved(stateHash, now));
    if (document === null || document.expire_time <= now) return false;
    const consumed = await this.#bucket(document.expire_time, stateHash).findOne({ _id: `consumed:${stateHash}` }, { projection: { _id: 1 } });
    return consumed === null;
  }

  /**
   * Background work, for every instance (each call is safe to repeat and to run on several at
   * once): rotates the current generation when this instance filled it, copies moving
   * generations to their buckets and drops them, and drops buckets that have expired.
   * Returns whether anything is left to do soon.
   */
  async maintain(now = new Date()): Promise<boolean> {
    if (this.#insertedSinceRotation >= ROTATE_AFTER) await this.#rotate(now);
    let busy = false;
    for (const name of await this.#names()) {
      const moving = MOVING.exec(name);
      const bucket = BUCKET.exec(name);
      if (moving !== null) {
        const age = now.getTime() - Number(moving[1]);
        if (age < COPY_AFTER_MS) busy = true;
        else if (age < DROP_AFTER_MS) {
          if (!this.#copied.has(name)) this.#copied.set(name, await this.#copy(name, now));
          busy = true;
        } else {
          // A last pass for anything that landed after the first copy (a write slower than the
          // rename); what this instance copied already is not sent again.
          await this.#copy(name, now, this.#copied.get(name));
          await this.#drop(name);
          this.#copied.delete(name);
        }
      } else if (bucket !== null && Number(bucket[1]) * 1000 + CLOCK_SLACK_MS < now.getTime()) {
        await this.#drop(name);
        this.#bucketsIndexed.delete(name);
      }
    }
    return busy;
  }

  /** Moves every stored PKCE verifier to the primary key, in every generation and bucket. Returns how many moved. */
  async reencrypt(box: SecretBox, context: (stateHash: string) => string): Promise<number> {
    let moved = 0;
    for (const name of [CURRENT, ...(await this.#names())]) {
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

  /**
   * A state no longer in the current generation: copied to the partition of a live bucket (where
   * it is after COPY_AFTER_MS), or else still in a moving generation.
   */
  async #findMoved(stateHash: string, now: Date): Promise<OAuthStateDocument | null> {
    const names = await this.#names();
    const partition = String(partitionOf(stateHash));
    const live = names.filter((name) => {
      const bucket = BUCKET.exec(name);
      return bucket !== null && Number(bucket[1]) * 1000 > now.getTime() && bucket[2] === partition;
    });
    for (const group of [live, names.filter((name) => MOVING.test(name))]) {
      const found = await Promise.all(group.map((name) => this.#db.collection<OAuthStateDocument>(name).findOne({ _id: stateHash })));
      const document = found.find((candidate) => candidate !== null);
      if (document !== undefined && document !== null) return document;
    }
    return null;
  }

  /** Moving generations and buckets, as the server lists them now (another instance may have just renamed one). */
  async #names(): Promise<string[]> {
    const collections = await this.#db.listCollections({}, { nameOnly: true }).toArray();
    return collections.map((c) => c.name).filter((name) => MOVING.test(name) || BUCKET.test(name));
  }

  #bucket(expireTime: Date, stateHash: string): Collection<OAuthStateDocument> {
    const end = (Math.floor(expireTime.getTime() / 1000 / BUCKET_SECONDS) + 1) * BUCKET_SECONDS;
    return this.#db.collection<OAuthStateDocument>(`oauth_states_until_${end}_p${partitionOf(stateHash)}`);
  }

  /** Renames the current generation away (a metadata change on both servers); the next insert starts a new one. */
  async #rotate(now: Date): Promise<void> {
    this.#insertedSinceRotation = 0;
    try {
      await this.#db.renameCollection(CURRENT, `oauth_states_moving_${now.getTime()}_${randomBytes(4).toString("hex")}`);
    } catch (error) {
      if (!isNamespaceNotFound(error)) throw error;
    }
    // The new generation keeps the expiry index (MongoDB's TTL, FerretDB's sweep uses it too).
    for (const index of oauthStateIndexes) await createIndex(this.collection, index);
  }

  /** Copies a moving generation's live states to their buckets; a copy already there is kept. */
  /** Copies a moving generation's unexpired states (but those in `skip`) to their buckets; returns their IDs. */
  async #copy(name: string, now: Date, skip?: ReadonlySet<string>): Promise<Set<string>> {
    const byBucket = new Map<string, OAuthStateDocument[]>();
    const copied = new Set<string>();
    for await (const document of this.#db.collection<OAuthStateDocument>(name).find({ expire_time: { $gt: now } })) {
      copied.add(document._id);
      if (skip?.has(document._id)) continue;
      const bucket = this.#bucket(document.expire_time, document._id).collectionName;
      byBucket.set(bucket, [...(byBucket.get(bucket) ?? []), document]);
    }
    for (const [bucket, documents] of byBucket) {
      const collection = this.#db.collection<OAuthStateDocument>(bucket);
      if (!this.#bucketsIndexed.has(bucket)) {
        // MongoDB's TTL index as a second line; FerretDB drops the bucket whole instead.
        for (const index of oauthStateIndexes) await createIndex(collection, index);
        this.#bucketsIndexed.add(bucket);
      }
      for (let i = 0; i < documents.length; i += COPY_CHUNK) {
        try {
          await collection.insertMany(documents.slice(i, i + COPY_CHUNK), { ordered: false });
        } catch (error) {
          const alreadyThere = error instanceof MongoBulkWriteError && [error.writeErrors].flat().every((e) => e.code === 11000);
          if (!alreadyThere) throw error;
        }
      }
    }
    return copied;
  }

  async #drop(name: string): Promise<void> {
    try {
      await this.#db.collection(name).drop();
    } catch (error) {
      if (!isNamespaceNotFound(error)) throw error;
    }
  }
}

/** The partition of a state hash: its first base64url character's value (hashes are uniform in it). */
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
