import type { Collection, Db, IndexDescription } from "mongodb";

/**
 * A signed-in operator console session, keyed by the SHA-256 hash of its cookie value (never the
 * value). It remembers who signed in, and with which API key or admin token, so that revoking or
 * expiring the key, or changing the admin token, ends the session too.
 */
export interface ConsoleSessionDocument {
  _id: string;
  caller_kind: "admin" | "organisation";
  organisation_id?: string;
  /** The caller's label in logs: the admin token's name or the API key's prefix. */
  label: string;
  /** The hash of the API key signed in with; absent for the admin token. */
  api_key_hash?: string;
  /**
   * For the admin token: an HMAC of it keyed by the session's cookie, compared with the current
   * token on every request (a changed token ends the session). Keyed by the cookie, which is not
   * stored, so it is no offline test for guesses at the token.
   */
  admin_token_hash?: string;
  create_time: Date;
  expire_time: Date;
}

export const consoleSessionIndexes: IndexDescription[] = [
  // MongoDB deletes a session once it has expired; FerretDB gets the periodic sweep.
  { key: { expire_time: 1 }, name: "expire_time_ttl", expireAfterSeconds: 0 },
];

/** The only module that reads or writes the `console_sessions` collection. */
export class ConsoleSessionStore {
  readonly collection: Collection<ConsoleSessionDocument>;

  constructor(db: Db) {
    this.collection = db.collection<ConsoleSessionDocument>("console_sessions");
  }

  async insert(document: ConsoleSessionDocument): Promise<void> {
    await this.collection.insertOne(document);
  }

  /** The session, unless it has expired (TTL deletion is lazy, so expiry is checked here too). */
  async findLive(hash: string, now = new Date()): Promise<ConsoleSessionDocument | null> {
    const document = await this.collection.findOne({ _id: hash });
    return document !== null && document.expire_time > now ? document : null;
  }

  /** Sign-out. Sessions are few and short-lived, so the delete stays cheap on FerretDB too. */
  async delete(hash: string): Promise<void> {
    await this.collection.deleteOne({ _id: hash });
  }
}
