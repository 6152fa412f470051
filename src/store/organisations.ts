import type { Collection, Db, IndexDescription } from "mongodb";
import { reencrypted } from "../crypto/reencrypt.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { type Batcher, batchedLookup } from "./batcher.js";
import { isDuplicateKey } from "./database.js";

/** An organisation's settings, keyed by its ID. Absent until first changed. */
export interface OrganisationDocument {
  _id: string;
  allowed_return_urls: string[];
  webhook_url?: string;
  /** SecretBox ciphertexts, newest first; at most two are valid at once. */
  webhook_secrets?: string[];
  /** Its flows use their own callback path, `/oauth2/callback/<_id>` (security issue 11, item 2). */
  per_organisation_callback?: boolean;
  update_time: Date;
}

export const organisationIndexes: IndexDescription[] = [];

/** The lease that serialises changes to one organisation's settings. */
export function organisationLeaseKey(organisationId: string): string {
  return `organisation:${organisationId}`;
}

/** The only module that reads or writes the `organisations` collection. */
export class OrganisationStore {
  readonly collection: Collection<OrganisationDocument>;
  // Every InitialiseOAuth2Connection reads its organisation's settings: concurrent reads share a find.
  readonly #byId: Batcher<string, OrganisationDocument | null>;

  constructor(db: Db) {
    this.collection = db.collection<OrganisationDocument>("organisations");
    this.#byId = batchedLookup(this.collection, "_id");
  }

  async findById(organisationId: string): Promise<OrganisationDocument | null> {
    return this.#byId.call(organisationId);
  }

  /**
   * Changes an organisation's settings, creating the document on first use. Callers hold the
   * organisation's lease (`organisationLeaseKey`): FerretDB v1 rewrites the whole document on
   * update, so two unserialised updates of different fields can lose one.
   */
  async update(
    organisationId: string,
    changes: Partial<Omit<OrganisationDocument, "_id">>,
    clear: ReadonlyArray<keyof OrganisationDocument> = [],
  ): Promise<OrganisationDocument> {
    const update: Record<string, unknown> = {
      $set: { ...changes, update_time: new Date() },
      $setOnInsert: { _id: organisationId, ...(changes.allowed_return_urls ? {} : { allowed_return_urls: [] }) },
    };
    if (clear.length > 0) update.$unset = Object.fromEntries(clear.map((field) => [field, ""]));
    // Two first-time upserts race to insert: the unique _id lets one win and the other fail with
    // 11000 (both on MongoDB and FerretDB), after which the document exists and the retry updates it.
    for (let attempt = 0; ; attempt++) {
      try {
        const document = await this.collection.findOneAndUpdate({ _id: organisationId }, update, { upsert: true, returnDocument: "after" });
        if (document === null) throw new Error("upsert returned no document");
        return document;
      } catch (error) {
        if (attempt > 0 || !isDuplicateKey(error)) throw error;
      }
    }
  }

  /** Moves every webhook secret to the primary key. Returns how many organisations moved. */
  async reencrypt(box: SecretBox, context: (organisationId: string) => string): Promise<number> {
    let moved = 0;
    for await (const document of this.collection.find({ webhook_secrets: { $exists: true } })) {
      const secrets = document.webhook_secrets ?? [];
      const next = secrets.map((secret) => reencrypted(box, secret, context(document._id)) ?? secret);
      if (next.every((secret, i) => secret === secrets[i])) continue;
      const { modifiedCount } = await this.collection.updateOne(
        { _id: document._id, webhook_secrets: secrets },
        { $set: { webhook_secrets: next } },
      );
      moved += modifiedCount;
    }
    return moved;
  }

  /** Organisations that have settings. */
  async organisationIds(): Promise<string[]> {
    return (await this.collection.find({}, { projection: { _id: 1 } }).toArray()).map((document) => document._id);
  }
}
