import type { ConnectionApi } from "../providers/api.js";
import type { Collection, Db, Filter, IndexDescription, UpdateFilter } from "mongodb";
import { reencrypted } from "../crypto/reencrypt.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { type OutboxEntryDocument, OutboxStore } from "./outbox.js";
import { type ConnectionExpiryDocument, ConnectionExpiryStore } from "./connection-expiries.js";
import type { ListingReads } from "./listing-reads.js";
import { ConnectionDirectory, type DirectorySlotDocument, seqOf } from "./connection-directory.js";
import { ConnectionImportStore } from "./connection-imports.js";

/**
 * PENDING: made with an end user ID, waiting for ConfirmConnection. DELETED: tokens are gone; the
 * document waits only for its last event to be relayed.
 */
import type { ConnectionStatus } from "./connection-status.js";

export type { ConnectionStatus };

export type ConnectionEventType =
  | "connection.created"
  | "connection.reauthorized"
  | "connection.refresh_failed"
  | "connection.recovered"
  | "connection.needs_reauthorization"
  | "connection.deleted";

/** The account at the provider a connection belongs to, as far as the provider said. */
export interface ExternalAccountDocument {
  id: string;
  email?: string;
  name?: string;
}

/**
 * What a grant (a callback's token response) stores on a connection. The token fields are
 * SecretBox ciphertexts bound to the connection's ID and the field name.
 */
export interface StoredGrant {
  scopes: string[];
  token_type: string;
  access_token: string;
  refresh_token?: string;
  id_token?: string;
  expire_time?: Date;
  extra_fields?: string;
  external_account?: ExternalAccountDocument;
  /** Where the tokens were obtained (see ConnectionDocument). */
  token_url?: string;
  revocation_url?: string;
  metadata?: Record<string, string>;
  connection_config?: Record<string, string>;
  api?: ConnectionApi;
}

/**
 * A reconnect's grant held until ConfirmConnection (the reconnect was bound to an end user): the
 * connection keeps serving its old tokens until then. Its ciphertexts use the same contexts as
 * the connection's own fields, since confirming moves them there.
 */
export interface HeldGrant extends StoredGrant {
  end_user_id: string;
  confirmation_hash: string;
  failed_confirmations?: number;
  /** After this the held grant is dropped at the next confirmation attempt. */
  hold_expire_time: Date;
}

/** The secret fields of a connection (and of a held grant), for re-encryption. */
export const SECRET_FIELDS = ["access_token", "refresh_token", "id_token", "extra_fields"] as const;

/**
 * An event recorded in the same single-document write as the change it reports: the outbox.
 * The relay copies it to the `events` collection and then clears it. Single-document writes are
 * atomic on MongoDB and FerretDB alike, so no transaction is needed for "the change and its
 * event, or neither".
 */
export interface PendingEvent {
  _id: string;
  type: ConnectionEventType;
  status?: ConnectionStatus;
  status_reason?: string;
  create_time: Date;
}

/**
 * A connected end-user account. Tokens and the provider's extra response fields are SecretBox
 * ciphertexts bound to the connection's ID and field name. After creation, every write happens
 * under the connection's lease (FerretDB v1 has no atomic read-modify-write, so concurrent
 * updates of one document could otherwise lose one another).
 */
/** How a connection holds its access (the contract's ConnectionKind); absent on older connections: authorization_code. */
export type ConnectionKindName =
  | "authorization_code"
  | "client_credentials"
  | "imported"
  | "device_code"
  | "jwt_bearer"
  | "api_key"
  | "basic";

/** The parameters of a token request a connection repeats to get a new token (client credentials). */
export interface GrantRequestDocument {
  scopes: string[];
  resource?: string[];
  /** CLIENT_CREDENTIALS: the `audience` parameter; JWT_BEARER: the assertion's `aud`. */
  audience?: string;
  /** JWT_BEARER: the assertion's `sub`. */
  subject?: string;
}

export interface ConnectionDocument {
  _id: string;
  kind?: ConnectionKindName;
  organisation_id: string;
  connector_id: string;
  credential_id: string;
  status: ConnectionStatus;
  status_reason?: string;
  scopes: string[];
  token_type: string;
  access_token?: string;
  refresh_token?: string;
  id_token?: string;
  /** When the access token expires; absent when the provider did not say. */
  expire_time?: Date;
  /** JSON of the token response's other fields (they may hold secrets, e.g. Slack's user token). */
  extra_fields?: string;
  /**
   * The provider's connection-level template values the connection was made with: refresh and
   * revocation go to the hosts they name.
   */
  connection_config?: Record<string, string>;
  /** Non-secret facts the provider catalog names (from the token response and callback query). */
  metadata?: Record<string, string>;
  /** Where the provider's API lives for this connection (see ConnectionApi). */
  api?: ConnectionApi;
  /** For PENDING connections: who must confirm, the hash of the one-time code, and until when. */
  end_user_id?: string;
  confirmation_hash?: string;
  failed_confirmations?: number;
  pending_expire_time?: Date;
  /** When the last refresh was attempted, whatever its outcome. */
  refresh_attempt_time?: Date;
  /** When the last refresh succeeded (forced refreshes happen at most once per window). */
  refresh_time?: Date;
  /** When the refresh token was last used or issued (idle connections are refreshed). */
  refresh_token_time?: Date;
  /**
   * Set, under the lease, just before a refresh request is sent and cleared with its outcome.
   * Found set by the next holder: the outcome is unknown (timeout, crash), and the provider may
   * have rotated the refresh token already.
   */
  refresh_sent_time?: Date;
  /** Backoff while refreshes keep failing: how many in a row, since when, and the next attempt. */
  refresh_failures?: number;
  refresh_failing_since?: Date;
  refresh_retry_time?: Date;
  /** The account at the provider; absent when the provider did not say. */
  external_account?: ExternalAccountDocument;
  /** A reconnect waiting for ConfirmConnection. */
  reauthorization?: HeldGrant;
  /**
   * The confirmation hashes of the last grants a newer reconnect replaced (held, or PENDING and
   * unconfirmed): confirming one of them is refused as superseded and changes nothing.
   */
  superseded_confirmation_hashes?: string[];
  /**
   * The credential's token and revocation endpoints when this connection's tokens were obtained:
   * its tokens are sent nowhere else (security issue 11, item 1) unless an admin moves it.
   * `token_url` is absent only on connections made before the broker recorded it.
   */
  token_url?: string;
  revocation_url?: string;
  /** CLIENT_CREDENTIALS and JWT_BEARER: what each token request asks for (RFC 6749 §4.4.2, RFC 8707, RFC 7523 §3). */
  grant_request?: GrantRequestDocument;
  /** API_KEY and BASIC: the catalog provider the secret is for, when named. */
  provider?: string;
  pending_events: PendingEvent[];
  /** The connection's slot in its organisation's directory (see ConnectionDirectory); absent on connections from before it, until the start-up reconcile. */
  directory_seq?: number;
  create_time: Date;
  update_time: Date;
}

/** What a write needs to know of the connection it changes (as read under the lease). */
export type ConnectionRef = Pick<ConnectionDocument, "_id" | "organisation_id" | "status" | "directory_seq">;

/** CountConnections' figures: live connections per status, and the failing ones' credentials. */
export interface ConnectionCounts {
  byStatus: Map<ConnectionStatus, number>;
  /** One entry per failing connection (at most `limit`). */
  failingCredentialIds: string[];
}

export interface ConnectionFilter {
  connectorId?: string;
  credentialId?: string;
  status?: Exclude<ConnectionStatus, "DELETED">;
}

/**
 * Where a page of connections ended, for the next page to start after: its last connection's
 * directory slot, or that connection's ID (pages read before the directory was complete).
 */
export type ListPosition = { seq: number } | { id: string };

export interface ListedConnection {
  document: ConnectionDocument;
  position: ListPosition;
}

export const connectionIndexes: IndexDescription[] = [
  // Listing an organisation's connections, newest first (UUIDv7 IDs sort by creation time).
  { key: { organisation_id: 1, _id: -1 }, name: "organisation_id_1__id_-1" },
  // Start-up's scan for events noted before the outbox collection existed. (No index on
  // `pending_expire_time`: unconfirmed connections expire from their notes, ConnectionExpiryStore,
  // not by a TTL index or a sweep of this collection.)
  { key: { "pending_events._id": 1 }, name: "pending_events._id_1", sparse: true },
  // The idle-refresh scan for refresh tokens not used for a while.
  { key: { refresh_token_time: 1 }, name: "refresh_token_time_1", sparse: true },
];

const NOT_DELETED = { $ne: "DELETED" } as const;

/**
 * The only module that reads or writes the `connections` collection.
 *
 * Per-request reads and writes filter on `_id` alone, and check anything else in code: FerretDB
 * 1.24 (SQLite) pushes only an exact `{_id}` filter down to SQLite, and reads and decodes every
 * document for any other filter (8 times slower at 50 000 connections). Writes are made holding
 * the connection's lease, so a condition the filter used to carry is checked on the document read
 * under the lease instead, on MongoDB as on FerretDB.
 */
export class ConnectionStore {
  readonly collection: Collection<ConnectionDocument>;
  /** Which connections have events to relay (see OutboxStore). */
  readonly outbox: OutboxStore;
  /** When unconfirmed connections and held grants expire (see ConnectionExpiryStore). */
  readonly expiries: ConnectionExpiryStore;
  /** Each organisation's connections by exact `_id` lookups, for listing and counting (see ConnectionDirectory). */
  readonly directory: ConnectionDirectory;
  /** Which connection each import made (see ConnectionImportStore). */
  readonly imports: ConnectionImportStore;

  /** `reads`: where listings' and counts' finds wait their turn, shared with the event history's listings. */
  constructor(db: Db, reads?: ListingReads) {
    this.collection = db.collection<ConnectionDocument>("connections");
    this.outbox = new OutboxStore(db);
    this.expiries = new ConnectionExpiryStore(db);
    this.directory = new ConnectionDirectory(db, reads);
    this.imports = new ConnectionImportStore(db);
  }

  async insert(document: ConnectionDocument): Promise<void> {
    // Noted first: a crash in between leaves a note without a connection (dropped by the job that
    // reads it), never work without a note. The slot too: one whose connection never came is
    // skipped by listings, and the start-up reconcile stops counting it.
    if (document.pending_events.length > 0) await this.outbox.mark(document._id, document.create_time);
    if (document.pending_expire_time !== undefined) await this.expiries.note(document._id, document.pending_expire_time);
    const { organisation_id: organisationId } = document;
    document.directory_seq = await this.directory.claim(organisationId, slotOf(document));
    try {
      await this.collection.insertOne(document);
    } catch (error) {
      // Not stored: the slot stops counting it (the reconcile does, should this fail too).
      await this.directory.mirror(organisationId, document.directory_seq, "DELETED").catch(() => undefined);
      throw error;
    }
  }

  /** Scoped by organisation; a deleted connection is not found. */
  async findById(organisationId: string, id: string): Promise<ConnectionDocument | null> {
    const document = await this.collection.findOne({ _id: id });
    return document !== null && document.organisation_id === organisationId && document.status !== "DELETED" ? document : null;
  }

  /**
   * Newest first (the order they were made in), after `after` (where the previous page ended)
   * when given; each with where it stands, to start the next page from.
   */
  async list(organisationId: string, filter: ConnectionFilter, after: ListPosition | undefined, limit: number): Promise<ListedConnection[]> {
    if (!(await this.directory.complete())) {
      if (after !== undefined && !("id" in after)) throw new Error("a directory position before the directory is complete");
      return this.#listByScan(organisationId, filter, after?.id, limit);
    }
    let belowSeq: number | undefined;
    if (after !== undefined && "id" in after) {
      // A page token from before the directory: where its connection stands now, else the query it came from.
      const last = await this.collection.findOne({ _id: after.id });
      belowSeq = last !== null && last.organisation_id === organisationId ? await this.directory.seqOf(last) : undefined;
      if (belowSeq === undefined) return this.#listByScan(organisationId, filter, after.id, limit);
    } else belowSeq = after?.seq;
    // The directory picks the candidates; each is read by `_id` and checked as stored.
    const shown = (document: ConnectionDocument | null): document is ConnectionDocument =>
      document !== null &&
      document.organisation_id === organisationId &&
      (filter.status === undefined ? document.status !== "DELETED" : document.status === filter.status) &&
      (filter.connectorId === undefined || document.connector_id === filter.connectorId) &&
      (filter.credentialId === undefined || document.credential_id === filter.credentialId);
    const listed = await this.directory.newestFirst(organisationId, filter, belowSeq, limit, async (slot) => {
      const document = await this.directory.reads.run(organisationId, () => this.collection.findOne({ _id: slot.connection_id }));
      return shown(document) ? document : null;
    });
    return listed.map(({ seq, item }) => ({ document: item, position: { seq } }));
  }

  /** The listing as it was before the directory: a query on `connections` (FerretDB reads every document for it). */
  async #listByScan(organisationId: string, filter: ConnectionFilter, beforeId: string | undefined, limit: number): Promise<ListedConnection[]> {
    const query: Filter<ConnectionDocument> = { organisation_id: organisationId, status: filter.status ?? NOT_DELETED };
    if (filter.connectorId !== undefined) query.connector_id = filter.connectorId;
    if (filter.credentialId !== undefined) query.credential_id = filter.credentialId;
    if (beforeId !== undefined) query._id = { $lt: beforeId };
    const documents = await this.directory.reads.run(organisationId, () => this.collection.find(query).sort({ _id: -1 }).limit(limit).toArray());
    return documents.map((document) => ({ document, position: { id: document._id } }));
  }

  /** Applies a change, and records its event in the same write. Call it holding the lease. */
  async update(
    connection: ConnectionRef,
    change: { set?: Partial<ConnectionDocument>; unset?: Array<keyof ConnectionDocument>; event?: PendingEvent },
  ): Promise<void> {
    const id = connection._id;
    const update: UpdateFilter<ConnectionDocument> = { $set: { ...change.set, update_time: new Date() } };
    if (change.unset !== undefined && change.unset.length > 0) {
      update.$unset = Object.fromEntries(change.unset.map((field) => [field, ""]));
    }
    // A new unconfirmed grant (a held reconnect, or a PENDING connection's new expiry) is noted first.
    const expiry = change.set?.reauthorization?.hold_expire_time ?? change.set?.pending_expire_time;
    if (expiry !== undefined) await this.expiries.note(id, expiry);
    if (change.event !== undefined) {
      await this.outbox.mark(id);
      update.$push = { pending_events: change.event };
    }
    await this.collection.updateOne({ _id: id }, update);
    const status = change.set?.status;
    if (status === undefined || status === connection.status) return;
    const seq = await this.directory.seqOf(connection);
    // Without a slot (made by an older version during an upgrade): the reconcile gives it one.
    if (seq !== undefined) await this.directory.mirror(connection.organisation_id, seq, status);
  }

  /** How many of the organisation's connections have each status (deleted ones left out), and the failing ones' credentials. */
  async counts(organisationId: string, limit: number): Promise<ConnectionCounts> {
    const statuses = ["ACTIVE", "REFRESH_FAILED", "NEEDS_REAUTHORIZATION", "PENDING"] as const;
    if (!(await this.directory.complete())) {
      const [counts, failingCredentialIds] = await Promise.all([
        Promise.all(statuses.map((status) => this.collection.countDocuments({ organisation_id: organisationId, status }))),
        this.#failingCredentialIdsByScan(organisationId, limit),
      ]);
      return { byStatus: new Map(statuses.map((status, i) => [status, counts[i] ?? 0])), failingCredentialIds };
    }
    const byStatus = new Map<ConnectionStatus, number>(statuses.map((status) => [status, 0]));
    const failingCredentialIds: string[] = [];
    for (const group of await this.directory.tally(organisationId)) {
      byStatus.set(group.status, (byStatus.get(group.status) ?? 0) + group.count);
      if (group.status === "REFRESH_FAILED" || group.status === "NEEDS_REAUTHORIZATION") {
        const room = Math.max(0, Math.min(group.count, limit - failingCredentialIds.length));
        for (let i = 0; i < room; i++) failingCredentialIds.push(group.credential_id);
      }
    }
    return { byStatus, failingCredentialIds };
  }

  /** Credential IDs of the organisation's failing connections, one entry per connection (at most `limit`). */
  async #failingCredentialIdsByScan(organisationId: string, limit: number): Promise<string[]> {
    const failing = await this.collection
      .find({ organisation_id: organisationId, status: { $in: ["REFRESH_FAILED", "NEEDS_REAUTHORIZATION"] } }, { projection: { credential_id: 1 } })
      .limit(limit)
      .toArray();
    return failing.map((document) => document.credential_id);
  }

  /** IDs of a credential's connections (deleted ones aside), for moving them to its endpoints. */
  async idsByCredential(organisationId: string, credentialId: string): Promise<string[]> {
    if (await this.directory.complete()) {
      const slots = await this.directory.newestFirst(organisationId, { credentialId }, undefined, Number.MAX_SAFE_INTEGER, async (slot) => slot);
      return slots.map(({ item }) => item.connection_id);
    }
    const documents = await this.collection
      .find({ organisation_id: organisationId, credential_id: credentialId, status: NOT_DELETED }, { projection: { _id: 1 } })
      .toArray();
    return documents.map((document) => document._id);
  }

  /** Connections noted as having events to publish (the relay's work), oldest notes first. */
  async withPendingEvents(limit: number): Promise<OutboxEntryDocument[]> {
    return this.outbox.list(limit);
  }

  /**
   * Notes the connections that have events but no note (written before the outbox collection
   * existed). A scan of every connection: run once at start-up, never per request.
   */
  async noteUnrelayedEvents(): Promise<number> {
    let noted = 0;
    for await (const document of this.collection.find({ "pending_events.0": { $exists: true } }, { projection: { _id: 1 } })) {
      await this.outbox.mark(document._id);
      noted++;
    }
    return noted;
  }

  /**
   * Notes the unconfirmed grants (PENDING connections, held reconnects) made before the notes
   * existed. A scan of every connection: run once at start-up, never per request.
   */
  async noteUnconfirmed(): Promise<number> {
    let noted = 0;
    const filter: Filter<ConnectionDocument> = {
      $or: [{ status: "PENDING", pending_expire_time: { $exists: true } }, { "reauthorization.hold_expire_time": { $exists: true } }],
    };
    const projection = { _id: 1, status: 1, pending_expire_time: 1, "reauthorization.hold_expire_time": 1 };
    for await (const document of this.collection.find(filter, { projection })) {
      const expiry = document.status === "PENDING" ? document.pending_expire_time : document.reauthorization?.hold_expire_time;
      if (expiry === undefined) continue;
      await this.expiries.note(document._id, expiry);
      noted++;
    }
    return noted;
  }

  /** Connections whose expiry note is due (the connection may have changed since: re-read it under the lease). */
  async expiryNotesDue(now: Date, limit: number): Promise<ConnectionExpiryDocument[]> {
    return this.expiries.due(now, limit);
  }

  /** The connection's grant expires later than its note says: the note follows. */
  async postponeExpiry(id: string, expireTime: Date): Promise<void> {
    await this.expiries.postpone(id, expireTime);
  }

  /** Nothing on the connection waits for confirmation any more: its note goes. Call it holding the lease. */
  async expiryHandled(id: string): Promise<void> {
    await this.expiries.remove(id);
  }

  /** The connection's events are all published (or it is gone). Call it holding the lease. */
  async relayed(id: string): Promise<void> {
    await this.outbox.clear(id);
  }

  async findByIdUnscoped(id: string): Promise<ConnectionDocument | null> {
    return this.collection.findOne({ _id: id });
  }

  /**
   * Drops events that were published. Call it holding the lease, with the events as read under
   * it. The array is rewritten rather than `$pull`ed: FerretDB v1 ignores a `$pull` condition and
   * only removes elements equal to it as a whole.
   */
  async clearPendingEvents(id: string, pending: readonly PendingEvent[], published: readonly string[]): Promise<void> {
    const remaining = pending.filter((event) => !published.includes(event._id));
    await this.collection.updateOne({ _id: id }, { $set: { pending_events: remaining } });
  }

  /**
   * Removes an unconfirmed connection and its tokens. Call it holding the lease, having seen it
   * PENDING under the lease (the filter is `_id` alone, see the class comment).
   */
  async deletePending(connection: ConnectionRef): Promise<void> {
    await this.collection.deleteOne({ _id: connection._id });
    const seq = await this.directory.seqOf(connection);
    if (seq !== undefined) await this.directory.mirror(connection.organisation_id, seq, "DELETED");
  }

  /**
   * Removes a deleted connection once its last event is published. Call it holding the lease,
   * having seen it DELETED under the lease.
   */
  async purge(id: string): Promise<void> {
    await this.collection.deleteOne({ _id: id });
  }

  /**
   * Connections whose refresh token was last used or issued before `cutoff` (documents from
   * before the field existed count from their creation), and that may be refreshed now; only
   * those of `credentialIds` when given.
   */
  async findIdle(cutoff: Date, now: Date, limit: number, credentialIds?: readonly string[]): Promise<ConnectionDocument[]> {
    return this.collection
      .find({
        ...(credentialIds === undefined ? {} : { credential_id: { $in: [...credentialIds] } }),
        status: { $in: ["ACTIVE", "REFRESH_FAILED"] },
        refresh_token: { $exists: true },
        $and: [
          { $or: [{ refresh_token_time: { $lte: cutoff } }, { refresh_token_time: { $exists: false }, create_time: { $lte: cutoff } }] },
          { $or: [{ refresh_retry_time: { $exists: false } }, { refresh_retry_time: { $lte: now } }] },
        ],
      })
      .limit(limit)
      .toArray();
  }

  /** IDs of connections that hold a secret, for re-encryption. */
  async idsWithSecrets(): Promise<string[]> {
    const documents = await this.collection.find({ status: NOT_DELETED }, { projection: { _id: 1 } }).toArray();
    return documents.map((document) => document._id);
  }

  /** Moves one connection's secrets to the primary key. Call it holding the lease. */
  async reencrypt(id: string, box: SecretBox, context: (connectionId: string, field: string) => string): Promise<boolean> {
    const document = await this.collection.findOne({ _id: id });
    if (document === null) return false;
    const set: Record<string, string> = {};
    for (const field of SECRET_FIELDS) {
      // A held grant's ciphertexts are bound to the same contexts as the connection's own.
      for (const [path, value] of [
        [field, document[field]],
        [`reauthorization.${field}`, document.reauthorization?.[field]],
      ] as const) {
        const next = value === undefined ? undefined : reencrypted(box, value, context(id, field));
        if (next !== undefined) set[path] = next;
      }
    }
    if (Object.keys(set).length === 0) return false;
    await this.collection.updateOne({ _id: id }, { $set: set });
    return true;
  }

  /** Connections that may need their directory slot made or mended: every one, by ID (a scan: start-up only). */
  async *everyConnectionForDirectory(): AsyncGenerator<Pick<ConnectionDocument, "_id" | "organisation_id" | "status" | "connector_id" | "credential_id" | "directory_seq">> {
    const projection = { _id: 1, organisation_id: 1, status: 1, connector_id: 1, credential_id: 1, directory_seq: 1 };
    yield* this.collection.find({}, { projection }).sort({ _id: 1 });
  }

  /**
   * Mends a connection's slot: its mirror when stale, a new slot when its own is gone, and any
   * other slot naming it no longer counted. Call it holding the lease, with the connection as read
   * under it, its slot's seq and the slots found naming it.
   */
  async mendDirectory(connection: ConnectionDocument, seq: number, naming: readonly DirectorySlotDocument[]): Promise<void> {
    const organisationId = connection.organisation_id;
    const own = naming.find((slot) => seqOf(slot) === seq) ?? (await this.directory.slot(organisationId, seq));
    // A DELETED slot stays so (readers skip runs of them for good): a connection that lives on takes a new one.
    if (own === null || (own.status === "DELETED" && connection.status !== "DELETED")) {
      const claimed = await this.directory.claim(organisationId, slotOf(connection));
      await this.collection.updateOne({ _id: connection._id }, { $set: { directory_seq: claimed } });
    } else if (own.status !== connection.status) {
      await this.directory.mirror(organisationId, seq, connection.status);
    }
    for (const other of naming) if (seqOf(other) !== seq && other.status !== "DELETED") await this.directory.mirror(organisationId, seqOf(other), "DELETED");
  }
}

export function slotOf(connection: Pick<ConnectionDocument, "_id" | "connector_id" | "credential_id" | "status">): Omit<DirectorySlotDocument, "_id" | "claim_time"> {
  return { connection_id: connection._id, connector_id: connection.connector_id, credential_id: connection.credential_id, status: connection.status };
}
