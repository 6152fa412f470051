import type { Collection, Db, IndexDescription } from "mongodb";
import { reencrypted } from "../crypto/reencrypt.js";
import type { SecretBox } from "../crypto/secret-box.js";
import type { TokenEndpointAuthMethodName } from "../oauth/token-exchange.js";
import { type Batcher, batchedLookup } from "./batcher.js";

/** A stored OAuth client registration. `client_secret` is a SecretBox ciphertext. */
export interface CredentialDocument {
  _id: string;
  organisation_id: string;
  name: string;
  client_id: string;
  client_secret: string;
  /** Absent when the credential's provider catalog entry gives it. */
  token_url?: string;
  /** Absent: as the provider catalog says (credentials without `provider` always store it). */
  token_endpoint_auth_method?: TokenEndpointAuthMethodName;
  /** Absent: as the provider catalog says (credentials without `provider` always store it). */
  disable_pkce?: boolean;
  issuer?: string;
  revocation_url?: string;
  userinfo_url?: string;
  /** A provider catalog ID, and its credential-level template values. */
  provider?: string;
  provider_config?: Record<string, string>;
  /** The API proxy's base for this credential's connections (recorded on each when it is made), and how the token travels there. */
  api_base_url?: string;
  api_token_placement?: { in: "header" | "query"; name: string; scheme: string };
  authorization_response_iss_parameter_supported: boolean;
  create_time: Date;
  update_time: Date;
}

/**
 * The fields that decide where the broker sends secrets (the client secret, and connections'
 * tokens). One changes only together with the client secret, so the stored secret always belongs
 * to the endpoints in force (security issue 11, item 1); connections keep their own copies of the
 * token and revocation endpoints (see `ConnectionDocument.token_url`).
 */
export const SECRET_DESTINATION_FIELDS = ["token_url", "revocation_url", "issuer", "userinfo_url", "provider", "provider_config", "api_base_url", "api_token_placement"] as const satisfies ReadonlyArray<keyof CredentialDocument>;

export type CredentialChanges = Partial<Omit<CredentialDocument, "_id" | "organisation_id" | "create_time" | "update_time">>;

export const credentialIndexes: IndexDescription[] = [
  // Listing an organisation's credentials in id (creation) order.
  { key: { organisation_id: 1, _id: 1 }, name: "organisation_id_1__id_1" },
];

/** The only module that reads or writes the `credentials` collection. */
export class CredentialStore {
  readonly collection: Collection<CredentialDocument>;
  // Every InitialiseOAuth2Connection and callback reads its credential: concurrent reads share a find.
  readonly #byId: Batcher<string, CredentialDocument | null>;

  constructor(db: Db) {
    this.collection = db.collection<CredentialDocument>("credentials");
    this.#byId = batchedLookup(this.collection, "_id");
  }

  async insert(document: CredentialDocument): Promise<void> {
    await this.collection.insertOne(document);
  }

  /** Scoped by organisation so one organisation can never read another's credential. */
  async findById(organisationId: string, id: string): Promise<CredentialDocument | null> {
    const document = await this.#byId.call(id);
    return document?.organisation_id === organisationId ? document : null;
  }

  async listByOrganisation(organisationId: string, afterId: string | undefined, limit: number): Promise<CredentialDocument[]> {
    const filter = afterId === undefined ? { organisation_id: organisationId } : { organisation_id: organisationId, _id: { $gt: afterId } };
    return this.collection.find(filter).sort({ _id: 1 }).limit(limit).toArray();
  }

  /** Applies the changes and returns the updated document, or null when there is none to update. */
  async update(
    organisationId: string,
    id: string,
    changes: CredentialChanges,
    clear: ReadonlyArray<keyof CredentialChanges>,
  ): Promise<CredentialDocument | null> {
    const update: { $set: Partial<CredentialDocument>; $unset?: Record<string, ""> } = {
      $set: { ...changes, update_time: new Date() },
    };
    if (clear.length > 0) update.$unset = Object.fromEntries(clear.map((field) => [field, ""]));
    return this.collection.findOneAndUpdate({ _id: id, organisation_id: organisationId }, update, { returnDocument: "after" });
  }

  async delete(organisationId: string, id: string): Promise<boolean> {
    const { deletedCount } = await this.collection.deleteOne({ _id: id, organisation_id: organisationId });
    return deletedCount === 1;
  }

  /**
   * Moves every client secret to the primary key. Each write is conditional on the old
   * ciphertext, so a secret changed meanwhile is left as its writer made it. Returns how many moved.
   */
  async reencrypt(box: SecretBox, context: (credentialId: string) => string): Promise<number> {
    let moved = 0;
    for await (const document of this.collection.find({}, { projection: { client_secret: 1 } })) {
      const next = reencrypted(box, document.client_secret, context(document._id));
      if (next === undefined) continue;
      const { modifiedCount } = await this.collection.updateOne(
        { _id: document._id, client_secret: document.client_secret },
        { $set: { client_secret: next } },
      );
      moved += modifiedCount;
    }
    return moved;
  }

  /** IDs of the credentials of one catalog provider (for its own idle-refresh rule). */
  async idsByProvider(provider: string): Promise<string[]> {
    const documents = await this.collection.find({ provider }, { projection: { _id: 1 } }).toArray();
    return documents.map((document) => document._id);
  }

  /** Organisations that have credentials. */
  async organisationIds(): Promise<string[]> {
    return this.collection.distinct("organisation_id");
  }
}
