import { type Collection, type Db, type IndexDescription, MongoBulkWriteError } from "mongodb";
import { reencrypted } from "../crypto/reencrypt.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { Batcher } from "./batcher.js";

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
  // MongoDB deletes a state once `expire_time` has passed; FerretDB gets a periodic sweep.
  { key: { expire_time: 1 }, name: "expire_time_ttl", expireAfterSeconds: 0 },
];

/** The only module that reads or writes the `oauth_states` collection. */
export class OAuthStateStore {
  readonly collection: Collection<OAuthStateDocument>;
  // Every InitialiseOAuth2Connection inserts one state: concurrent ones share an insertMany.
  readonly #inserts: Batcher<OAuthStateDocument, void>;

  constructor(db: Db) {
    this.collection = db.collection<OAuthStateDocument>("oauth_states");
    this.#inserts = new Batcher((documents) => insertEach(this.collection, documents), { maxBatch: 500, maxConcurrent: 1 });
  }

  insert(document: OAuthStateDocument): Promise<void> {
    return this.#inserts.call(document);
  }

  /**
   * Removes and returns the attempt, so of two callbacks racing with one state exactly one gets
   * it. The winner is whoever's deleteOne removed the document: FerretDB v1 runs findOneAndDelete
   * as a read then a delete, so under concurrency several callers get the same document back,
   * while a delete's count is exact on both servers. An expired attempt is removed too but not
   * returned: TTL deletion is lazy, so expiry is checked here as well.
   */
  async consumeByHash(stateHash: string, now = new Date()): Promise<OAuthStateDocument | null> {
    const document = await this.collection.findOne({ _id: stateHash });
    if (document === null) return null;
    const { deletedCount } = await this.collection.deleteOne({ _id: stateHash });
    if (deletedCount !== 1 || document.expire_time <= now) return null;
    return document;
  }

  /** Whether an unexpired attempt with this hash is waiting (a read only; nothing is consumed). */
  async isPending(stateHash: string, now = new Date()): Promise<boolean> {
    const document = await this.collection.findOne({ _id: stateHash }, { projection: { expire_time: 1 } });
    return document !== null && document.expire_time > now;
  }

  /** Moves every stored PKCE verifier to the primary key. Returns how many moved. */
  async reencrypt(box: SecretBox, context: (stateHash: string) => string): Promise<number> {
    let moved = 0;
    for await (const document of this.collection.find({ code_verifier: { $exists: true } }, { projection: { code_verifier: 1 } })) {
      const next = reencrypted(box, document.code_verifier!, context(document._id));
      if (next === undefined) continue;
      const { modifiedCount } = await this.collection.updateOne(
        { _id: document._id, code_verifier: document.code_verifier },
        { $set: { code_verifier: next } },
      );
      moved += modifiedCount;
    }
    return moved;
  }
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
