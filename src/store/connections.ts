import type { Collection, Db, IndexDescription } from "mongodb";

export type ConnectionStatus = "ACTIVE";

/**
 * A connected end-user account. Tokens and the provider's extra response fields are SecretBox
 * ciphertexts bound to the connection's ID and field name.
 */
export interface ConnectionDocument {
  _id: string;
  organisation_id: string;
  connector_id: string;
  credential_id: string;
  status: ConnectionStatus;
  scopes: string[];
  token_type: string;
  access_token: string;
  refresh_token?: string;
  id_token?: string;
  /** When the access token expires; absent when the provider did not say. */
  expire_time?: Date;
  /** JSON of the token response's other fields (they may hold secrets, e.g. Slack's user token). */
  extra_fields?: string;
  create_time: Date;
  update_time: Date;
}

export const connectionIndexes: IndexDescription[] = [
  // Listing an organisation's connections, newest first (UUIDv7 IDs sort by creation time).
  { key: { organisation_id: 1, _id: -1 }, name: "organisation_id_1__id_-1" },
];

/** The only module that reads or writes the `connections` collection. */
export class ConnectionStore {
  readonly collection: Collection<ConnectionDocument>;

  constructor(db: Db) {
    this.collection = db.collection<ConnectionDocument>("connections");
  }

  async insert(document: ConnectionDocument): Promise<void> {
    await this.collection.insertOne(document);
  }

  async findById(organisationId: string, id: string): Promise<ConnectionDocument | null> {
    return this.collection.findOne({ _id: id, organisation_id: organisationId });
  }
}
