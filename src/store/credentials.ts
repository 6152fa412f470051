import type { Collection, Db, IndexDescription } from "mongodb";
import { reencrypted } from "../crypto/reencrypt.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { clientSecretContext, previousClientSecretContext, privateKeyContext } from "../crypto/secret-contexts.js";
import type { SigningAlgorithm } from "../crypto/signing-keys.js";
import type { ClientSecretSlot, TokenEndpointAuthMethodName } from "../oauth/client-authentication.js";
import { type Batcher, batchedLookup } from "./batcher.js";

/** One of a credential's signing keys. `private_key` is a SecretBox ciphertext of the private JWK. */
export interface CredentialKeyDocument {
  kid: string;
  alg: SigningAlgorithm;
  source: "generated" | "pem" | "jwk" | "google_service_account";
  private_key: string;
  /** The public JWK, as the JWKS publishes it. */
  public_jwk: Record<string, string>;
  /** Google service-account keys: the account and its token endpoint, for the JWT bearer grant. */
  service_account_email?: string;
  token_uri?: string;
  create_time: Date;
}

/**
 * A stored OAuth client registration. `client_secret` is a SecretBox ciphertext ("" for a
 * `private_key_jwt` credential created without one).
 */
export interface CredentialDocument {
  _id: string;
  organisation_id: string;
  name: string;
  client_id: string;
  client_secret: string;
  /** While a rotation is under way: the secret given before `client_secret` (a ciphertext). */
  previous_client_secret?: string;
  /** During a rotation: which secret the provider last accepted, and when it last needed the previous. */
  client_secret_last_used?: ClientSecretSlot;
  client_secret_fallback_time?: Date;
  /** Signing keys, oldest first; the last one signs. */
  keys?: CredentialKeyDocument[];
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

export type CredentialChanges = Partial<
  Omit<CredentialDocument, "_id" | "organisation_id" | "create_time" | "update_time" | "previous_client_secret" | "keys">
>;

/** The fields a rotation records; cleared whenever the secrets change. */
const ROTATION_RECORD = { client_secret_last_used: "", client_secret_fallback_time: "" } as const;

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
    // A secret given outright replaces both of a rotation's, and its record.
    const unset = changes.client_secret === undefined ? clear : [...clear, "previous_client_secret", ...Object.keys(ROTATION_RECORD)];
    if (unset.length > 0) update.$unset = Object.fromEntries(unset.map((field) => [field, ""]));
    return this.collection.findOneAndUpdate({ _id: id, organisation_id: organisationId }, update, { returnDocument: "after" });
  }

  /**
   * Starts or continues a rotation: `next` becomes the secret, and `previous` (the secret stored
   * until now, sealed for its new field) is kept. Conditional on the stored secret still being
   * `current`, so two rotations at once cannot lose one; null when it changed (or is gone).
   * `update_time` is kept: no endpoint changes, and sign-ins under way go on.
   */
  async rotateClientSecret(organisationId: string, id: string, current: string, next: string, previous: string): Promise<CredentialDocument | null> {
    return this.collection.findOneAndUpdate(
      { _id: id, organisation_id: organisationId, client_secret: current },
      { $set: { client_secret: next, previous_client_secret: previous }, $unset: ROTATION_RECORD },
      { returnDocument: "after" },
    );
  }

  /** Ends a rotation; null when none is under way (or there is no such credential). */
  async removePreviousClientSecret(organisationId: string, id: string): Promise<CredentialDocument | null> {
    return this.collection.findOneAndUpdate(
      { _id: id, organisation_id: organisationId, previous_client_secret: { $exists: true } },
      { $unset: { previous_client_secret: "", ...ROTATION_RECORD } },
      { returnDocument: "after" },
    );
  }

  /** Records which secret the provider accepted during a rotation (for the API and console). */
  async recordClientSecretUse(id: string, slot: ClientSecretSlot, now: Date): Promise<void> {
    const $set: Partial<CredentialDocument> = { client_secret_last_used: slot };
    if (slot === "previous") $set.client_secret_fallback_time = now;
    await this.collection.updateOne({ _id: id, previous_client_secret: { $exists: true } }, { $set });
  }

  /** Adds a signing key unless one with its `kid` exists; null when it does (or there is no credential). */
  async addKey(organisationId: string, id: string, key: CredentialKeyDocument): Promise<CredentialDocument | null> {
    return this.collection.findOneAndUpdate(
      { _id: id, organisation_id: organisationId, "keys.kid": { $ne: key.kid } },
      { $push: { keys: key } },
      { returnDocument: "after" },
    );
  }

  /** Removes a signing key, as read by the caller; null when it is gone (or the credential is). */
  async removeKey(organisationId: string, id: string, key: CredentialKeyDocument): Promise<CredentialDocument | null> {
    // The whole key as stored: FerretDB's $pull matches values, not query conditions.
    return this.collection.findOneAndUpdate(
      { _id: id, organisation_id: organisationId, "keys.kid": key.kid },
      { $pull: { keys: key } },
      { returnDocument: "after" },
    );
  }

  /**
   * The public JWKs of a credential's keys, for its public JWKS URL: looked up by ID alone (the
   * URL names no organisation), and nothing but the public keys leaves this method.
   */
  async publicKeys(id: string): Promise<Array<Record<string, string>>> {
    const document = await this.#byId.call(id);
    return (document?.keys ?? []).map((key) => key.public_jwk);
  }

  async delete(organisationId: string, id: string): Promise<boolean> {
    const { deletedCount } = await this.collection.deleteOne({ _id: id, organisation_id: organisationId });
    return deletedCount === 1;
  }

  /**
   * Moves every client secret and private key to the primary key. Each write is conditional on
   * the old ciphertexts, so a credential changed meanwhile is left as its writer made it. Returns
   * how many credentials moved.
   */
  async reencrypt(box: SecretBox): Promise<number> {
    let moved = 0;
    const projection = { client_secret: 1, previous_client_secret: 1, keys: 1 };
    for await (const document of this.collection.find({}, { projection })) {
      const again = (ciphertext: string, context: string) => (ciphertext === "" ? undefined : reencrypted(box, ciphertext, context));
      const secret = again(document.client_secret, clientSecretContext(document._id));
      const previous = document.previous_client_secret === undefined ? undefined : again(document.previous_client_secret, previousClientSecretContext(document._id));
      const keys = document.keys?.map((key) => ({ ...key, private_key: again(key.private_key, privateKeyContext(document._id, key.kid)) ?? key.private_key }));
      const keysMoved = keys?.some((key, i) => key.private_key !== document.keys![i]!.private_key);
      if (secret === undefined && previous === undefined && keysMoved !== true) continue;
      const $set: Partial<CredentialDocument> = {};
      if (secret !== undefined) $set.client_secret = secret;
      if (previous !== undefined) $set.previous_client_secret = previous;
      if (keysMoved) $set.keys = keys;
      const filter: Record<string, unknown> = { _id: document._id, client_secret: document.client_secret };
      if (document.previous_client_secret !== undefined) filter.previous_client_secret = document.previous_client_secret;
      if (keysMoved) filter["keys.private_key"] = { $all: document.keys!.map((key) => key.private_key) };
      const { modifiedCount } = await this.collection.updateOne(filter, { $set });
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
