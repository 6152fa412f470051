import type { Collection, Db } from "mongodb";
import { insertUnlessPresent } from "./database.js";

/**
 * Which connection an import made: keyed by the organisation and the migration's own `import_id`,
 * so a re-run finds it by `_id` alone (FerretDB 1.24 pushes only exact `_id` filters down; an
 * indexed field on `connections` would decode every connection per lookup).
 */
export interface ConnectionImportDocument {
  /** `<organisation_id>:<import_id>` (organisation IDs have no `:`). */
  _id: string;
  connection_id: string;
  create_time: Date;
}

/** The only module that reads or writes the `connection_imports` collection. */
export class ConnectionImportStore {
  readonly collection: Collection<ConnectionImportDocument>;

  constructor(db: Db) {
    this.collection = db.collection<ConnectionImportDocument>("connection_imports");
  }

  /** The connection ID an earlier import with this `import_id` claimed, if any. */
  async find(organisationId: string, importId: string): Promise<string | undefined> {
    return (await this.collection.findOne({ _id: importKey(organisationId, importId) }))?.connection_id;
  }

  /**
   * Claims the `import_id` for a connection about to be inserted (before it, so a crash in
   * between leaves a claim the next run completes). Returns the ID that holds the claim: ours,
   * or the one a concurrent import got in first with.
   */
  async claim(organisationId: string, importId: string, connectionId: string): Promise<string> {
    const key = importKey(organisationId, importId);
    if (await insertUnlessPresent(this.collection, { _id: key, connection_id: connectionId, create_time: new Date() })) return connectionId;
    return (await this.collection.findOne({ _id: key }))!.connection_id;
  }
}

function importKey(organisationId: string, importId: string): string {
  return `${organisationId}:${importId}`;
}
