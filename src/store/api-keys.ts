import type { Collection, Db, Filter, IndexDescription } from "mongodb";
import { type Batcher, batchedLookup } from "./batcher.js";

/** A caller's key, stored as a hash of the key (never the key). */
export interface ApiKeyDocument {
  _id: string;
  key_hash: string;
  prefix: string;
  name: string;
  /** Absent for an admin key. */
  organisation_id?: string;
  admin: boolean;
  create_time: Date;
  expire_time?: Date;
  revoke_time?: Date;
}

export const apiKeyIndexes: IndexDescription[] = [{ key: { key_hash: 1 }, name: "key_hash_1", unique: true }];

/** The only module that reads or writes the `api_keys` collection. */
export class ApiKeyStore {
  readonly collection: Collection<ApiKeyDocument>;
  // Every RPC made with an API key looks it up: concurrent lookups share a find.
  readonly #byHash: Batcher<string, ApiKeyDocument | null>;

  constructor(db: Db) {
    this.collection = db.collection<ApiKeyDocument>("api_keys");
    this.#byHash = batchedLookup(this.collection, "key_hash");
  }

  async insert(document: ApiKeyDocument): Promise<void> {
    await this.collection.insertOne(document);
  }

  findByHash(keyHash: string): Promise<ApiKeyDocument | null> {
    return this.#byHash.call(keyHash);
  }

  async list(organisationId: string | undefined): Promise<ApiKeyDocument[]> {
    const filter: Filter<ApiKeyDocument> = organisationId === undefined ? {} : { organisation_id: organisationId };
    return this.collection.find(filter).sort({ _id: -1 }).limit(1000).toArray();
  }

  async revoke(id: string): Promise<ApiKeyDocument | null> {
    await this.collection.updateOne({ _id: id, revoke_time: { $exists: false } }, { $set: { revoke_time: new Date() } });
    return this.collection.findOne({ _id: id });
  }

  /** Organisations that have API keys (admin keys have none). */
  async organisationIds(): Promise<string[]> {
    return (await this.collection.distinct("organisation_id")).filter((id): id is string => typeof id === "string");
  }
}
