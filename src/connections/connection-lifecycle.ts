import { hash, randomBytes, timingSafeEqual } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { v7 as uuidv7 } from "uuid";
import type { SecretBox } from "../crypto/secret-box.js";
import { newEvent } from "../events/connection-events.js";
import type { ExternalAccount } from "../oauth/external-account.js";
import { hashState } from "../oauth/state.js";
import { refreshAccessToken, requestClientCredentials, revokeToken } from "../oauth/token-exchange.js";
import type { TokenSet } from "../oauth/token-response.js";
import { ProviderCallError } from "../network/provider-call-error.js";
import { type ConnectionApi, renderApi } from "../providers/api.js";
import type { OutboundPolicy } from "../network/address-policy.js";
import {
  type ConnectionDocument,
  type ConnectionKindName,
  type ConnectionStore,
  type ExternalAccountDocument,
  type GrantRequestDocument,
  type HeldGrant,
  type PendingEvent,
  type StoredGrant,
  slotOf,
} from "../store/connections.js";
import { type DirectorySlotDocument, organisationOf, seqOf } from "../store/connection-directory.js";
import type { CredentialDocument, CredentialStore } from "../store/credentials.js";
import { connectionLeaseKey, type Lease, type LeaseStore } from "../store/leases.js";
import { isDuplicateKey } from "../store/database.js";
import { ConnectionError, connectionNotFound, needsReauthorization, refreshFailed } from "./connection-errors.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import { profileFor, type ProviderProfile } from "../providers/profile.js";
import { type ConnectionEndpoints, connectionTokenClient, credentialApi, endpointsOf, jwtBearerAssertionFor, tokenClientFor } from "./secrets.js";
import { type JwtBearerAssertion, JwtBearerAssertionError, requestJwtBearer } from "../oauth/jwt-bearer.js";
import { DomainError } from "../errors.js";
import { clientCredentialsRequestOf } from "./renewal.js";
import { connectionSecretContext } from "../crypto/secret-contexts.js";

export interface ConnectionLifecycleDeps {
  connections: ConnectionStore;
  credentials: CredentialStore;
  leases: LeaseStore;
  secretBox: SecretBox;
  /** The bounded fetch for provider calls (revocation). */
  fetch: typeof fetch;
  providers: ProviderCatalog;
  /** Checks provider-sent URLs used as API bases (renderApi). */
  outbound: OutboundPolicy;
  /** The provider-call timeout: a lease outlasts it (see `leaseMs`). */
  requestTimeoutMs: number;
  /** How long a grant bound to an end user waits for ConfirmConnection. */
  confirmationTtlMs: number;
  /** Refresh backoff: the first retry waits `retryMinMs`, doubling up to `retryMaxMs`. */
  retryMinMs: number;
  retryMaxMs: number;
  /** Failing refreshes for longer than this put the connection in NEEDS_REAUTHORIZATION. */
  giveUpMs: number;
  /** Called after a change that recorded an event, so the relay publishes it now. */
  onEvent: (connectionId: string) => void;
}

/** What a completed authorization (a callback) brings. */
export interface Grant {
  organisationId: string;
  connectorId: string;
  credentialId: string;
  tokens: TokenSet;
  /** Stored when the provider does not say which scopes it granted (RFC 6749 §5.1). */
  requestedScopes: string[];
  account: ExternalAccount | undefined;
  /** Set: the grant waits for ConfirmConnection by this end user. */
  endUserId: string | undefined;
  /** Where the tokens were obtained: the only endpoints they will be sent to. */
  endpoints: ConnectionEndpoints;
  /** What the provider catalog names from the callback and the response (never a secret). */
  metadata: Record<string, string>;
  /** The provider's connection-level template values the tokens were obtained with. */
  connectionConfig: Record<string, string>;
  /** Where the provider's API lives for this connection (renderApi), when the catalog says. */
  api?: ConnectionApi;
  /** Absent: an authorization code grant (the callback's). */
  kind?: ConnectionKindName;
  /** Client credentials and JWT bearer: what to ask for again on every renewal. */
  grantRequest?: GrantRequestDocument;
}

/** CreateConnection's client credentials or JWT bearer connection, checked. */
export interface ClientCredentialsInput {
  organisationId: string;
  connectorId: string;
  credential: CredentialDocument;
  grantRequest: GrantRequestDocument;
  connectionConfig: Record<string, string>;
}

/** CreateConnection's imported tokens, checked. */
export interface ImportInput {
  organisationId: string;
  connectorId: string;
  credential: CredentialDocument;
  importId: string;
  accessToken: string;
  refreshToken: string | undefined;
  expireTime: Date | undefined;
  tokenType: string;
  scopes: string[];
  account: ExternalAccountDocument | undefined;
  metadata: Record<string, string>;
  checkRefresh: boolean;
  connectionConfig: Record<string, string>;
}

/** A static secret, as handed out: an API key, or Basic's `base64(username:password)`. */
export interface StaticSecret {
  kind: "api_key" | "basic";
  value: string;
}

export type RevocationResult = { outcome: "not_requested" | "revoked" | "not_supported" } | { outcome: "failed"; error: string };

/** After this many wrong confirmations the pending connection (or held grant) is dropped. */
const MAX_FAILED_CONFIRMATIONS = 5;
/** How far past the provider timeout a lease lasts: the writes before and after the call. */
const LEASE_MARGIN_MS = 5_000;
const POLL_MS = 100;
/** A slot without its connection for this long is one whose insert never came (see reconcileDirectory). */
const ORPHAN_SLOT_MS = 60_000;
/** How long an import waits for a concurrent import's connection, inserted right after its claim. */
const CLAIM_WAIT_MS = 2_000;

/**
 * The one owner of connection writes. Every change after creation happens holding the
 * connection's lease (a document in `leases`: FerretDB v1 has no atomic read-modify-write, so
 * concurrent updates of one document could otherwise lose one another), re-reads the connection
 * under it, and records its event in the same single-document write (the outbox). The callback and
 * the RPC handlers only translate to and from these methods; the refresher decides when to
 * refresh and records the outcome here.
 */
export class ConnectionLifecycle {
  constructor(private readonly deps: ConnectionLifecycleDeps) {}

  /**
   * A lease outlasts the longest time a provider answer can still arrive: the bounded fetch
   * aborts the whole request (connect, headers and body) at the timeout, so after that no answer
   * is read, and no other holder can send a refresh token the provider may still be rotating.
   */
  get leaseMs(): number {
    return this.deps.requestTimeoutMs + LEASE_MARGIN_MS;
  }

  /** Takes the connection's lease, or null while someone holds it. */
  tryLease(connectionId: string): Promise<Lease | null> {
    return this.deps.leases.tryAcquire(connectionLeaseKey(connectionId), this.leaseMs);
  }

  release(lease: Lease): Promise<void> {
    return this.deps.leases.release(lease);
  }

  /**
   * Runs `change` holding the lease, with the connection as read under it. Waits (bounded) for a
   * busy lease: a refresh may be holding it. NOT_FOUND when the connection is missing, deleted or
   * another organisation's, before and after waiting.
   */
  async withLease<T>(organisationId: string, id: string, change: (connection: ConnectionDocument) => Promise<T>): Promise<T> {
    if ((await this.deps.connections.findById(organisationId, id)) === null) throw connectionNotFound();
    const lease = await this.deps.leases.acquire(connectionLeaseKey(id), this.leaseMs, this.leaseMs + 2_000, POLL_MS);
    if (lease === null) throw new ConnectionError("busy", "the connection is busy - try again");
    try {
      const connection = await this.deps.connections.findById(organisationId, id);
      if (connection === null) throw connectionNotFound();
      return await change(connection);
    } finally {
      await this.release(lease);
    }
  }

  /**
   * Stores a new connection from a callback's grant: ACTIVE, or PENDING until ConfirmConnection
   * when bound to an end user. Needs no lease: nobody else knows the new ID yet.
   */
  async create(grant: Grant, id = uuidv7()): Promise<{ id: string; confirmation: string | undefined }> {
    const now = new Date();
    const confirmation = grant.endUserId === undefined ? undefined : newConfirmation();
    const connection: ConnectionDocument = {
      _id: id,
      organisation_id: grant.organisationId,
      connector_id: grant.connectorId,
      credential_id: grant.credentialId,
      status: confirmation === undefined ? "ACTIVE" : "PENDING",
      ...this.#seal(id, grant, now),
      refresh_token_time: now,
      pending_events: confirmation === undefined ? [newEvent("connection.created", "ACTIVE")] : [],
      create_time: now,
      update_time: now,
    };
    if (grant.kind !== undefined) connection.kind = grant.kind;
    if (grant.grantRequest !== undefined) connection.grant_request = grant.grantRequest;
    if (confirmation !== undefined) {
      connection.end_user_id = grant.endUserId;
      connection.confirmation_hash = hashState(confirmation);
      connection.pending_expire_time = new Date(now.getTime() + this.deps.confirmationTtlMs);
    }
    await this.deps.connections.insert(connection);
    this.deps.onEvent(id);
    return { id, confirmation };
  }

  /**
   * CreateConnection with client credentials (RFC 6749 §4.4): obtains the first token now, so a
   * bad credential fails at once (`grant_refused`, naming the provider's error) and nothing is
   * stored; then stores the connection ACTIVE. The refresher obtains the next tokens the same way.
   */
  async createWithClientCredentials(input: ClientCredentialsInput): Promise<ConnectionDocument> {
    const profile = profileFor(this.deps.providers, input.credential, input.connectionConfig);
    const client = tokenClientFor(input.credential, profile, this.deps);
    const request = clientCredentialsRequestOf(input.grantRequest, profile.authorize.scopeSeparator);
    const tokens = await firstTokens(requestClientCredentials(client, request, this.deps.fetch));
    return this.#createFromGrant(input, profile, tokens, "client_credentials");
  }

  /**
   * CreateConnection with the JWT bearer grant (RFC 7523 §2.1): signs an assertion with the
   * credential's newest key and obtains the first token now, so a bad key or subject fails at once
   * (`grant_refused`, naming the provider's error) and nothing is stored; then stores the
   * connection ACTIVE. The refresher signs a new assertion before the token expires.
   */
  async createWithJwtBearer(input: ClientCredentialsInput): Promise<ConnectionDocument> {
    const profile = profileFor(this.deps.providers, input.credential, input.connectionConfig);
    let assertion: JwtBearerAssertion;
    try {
      assertion = jwtBearerAssertionFor(input.credential, profile, input.grantRequest, profile.tokenUrl, this.deps.secretBox);
    } catch (error) {
      if (error instanceof JwtBearerAssertionError) throw new DomainError("precondition_failed", `${error.message} (see AddCredentialKey)`);
      throw error;
    }
    const tokens = await firstTokens(requestJwtBearer(assertion, profile.token.response, this.deps.fetch));
    return this.#createFromGrant(input, profile, tokens, "jwt_bearer");
  }

  /** Stores a connection whose first tokens a grant without an end user just obtained (ACTIVE, `connection.created`). */
  async #createFromGrant(
    input: ClientCredentialsInput,
    profile: ProviderProfile,
    tokens: TokenSet,
    kind: "client_credentials" | "jwt_bearer",
  ): Promise<ConnectionDocument> {
    const { id } = await this.create({
      organisationId: input.organisationId,
      connectorId: input.connectorId,
      credentialId: input.credential._id,
      tokens,
      requestedScopes: input.grantRequest.scopes,
      account: undefined,
      endUserId: undefined,
      endpoints: endpointsOf(profile),
      metadata: { ...tokens.metadata, ...profile.connectionConfig },
      connectionConfig: { ...profile.connectionConfig },
      api: this.#api(profile, tokens.metadata),
      kind,
      grantRequest: input.grantRequest,
    });
    return this.#created(id);
  }

  /**
   * CreateConnection with imported tokens, idempotent by `import_id`: a re-run returns the
   * connection the first run made, unchanged (`created` false), since its tokens may have been
   * refreshed since and the migration's copies spent. The `import_id` is claimed just before the
   * insert, so a run that crashed in between is completed by the next. With `checkRefresh`, the
   * refresh token is used once first: refused, nothing is stored (`grant_refused`).
   */
  async importConnection(input: ImportInput): Promise<{ connection: ConnectionDocument; created: boolean }> {
    const { imports } = this.deps.connections;
    const claimedBefore = await imports.find(input.organisationId, input.importId);
    if (claimedBefore !== undefined) {
      // Claimed by an earlier run: done, or still being inserted, or the run crashed in between.
      const existing = await this.#awaitImported(claimedBefore);
      if (existing !== undefined) return { connection: existing, created: false };
    }
    const profile = profileFor(this.deps.providers, input.credential, input.connectionConfig);
    const now = new Date();
    let tokens: TokenSet = {
      accessToken: input.accessToken,
      tokenType: input.tokenType,
      expiresIn: input.expireTime === undefined ? undefined : (input.expireTime.getTime() - now.getTime()) / 1000,
      refreshToken: input.refreshToken,
      idToken: undefined,
      scopes: input.scopes,
      extra: {},
      metadata: {},
    };
    if (input.checkRefresh && input.refreshToken !== undefined) {
      const client = tokenClientFor(input.credential, profile, this.deps);
      const refreshed = await firstTokens(refreshAccessToken(client, input.refreshToken, this.deps.fetch));
      // RFC 6749 §6: without a new refresh token, the one given stays.
      tokens = { ...refreshed, refreshToken: refreshed.refreshToken ?? input.refreshToken, scopes: refreshed.scopes ?? input.scopes };
    }
    const id = claimedBefore ?? uuidv7();
    const claimed = await imports.claim(input.organisationId, input.importId, id);
    if (claimed !== id) {
      // A concurrent import of the same `import_id` got in first: its insert follows its claim.
      const existing = await this.#awaitImported(claimed);
      if (existing === undefined) throw new ConnectionError("busy", "an import with this import_id is in progress - try again");
      return { connection: existing, created: false };
    }
    const grant: Grant = {
      organisationId: input.organisationId,
      connectorId: input.connectorId,
      credentialId: input.credential._id,
      tokens,
      requestedScopes: input.scopes,
      account: input.account,
      endUserId: undefined,
      endpoints: endpointsOf(profile),
      metadata: { ...input.metadata, ...tokens.metadata, ...profile.connectionConfig },
      connectionConfig: { ...profile.connectionConfig },
      api: this.#api(profile, { ...input.metadata, ...tokens.metadata }),
      kind: "imported",
    };
    try {
      await this.create(grant, id);
    } catch (error) {
      // Completing a crashed run's claim while that run, only slow, inserted it after all.
      if (!isDuplicateKey(error)) throw error;
      return { connection: await this.#created(id), created: false };
    }
    return { connection: await this.#created(id), created: true };
  }

  /**
   * CreateConnection with a static API key or Basic pair: stored ACTIVE, encrypted like tokens,
   * never refreshed. Not bound to a credential (`credential_id` empty).
   */
  async createStatic(input: { organisationId: string; connectorId: string; provider: string | undefined; secret: StaticSecret }): Promise<ConnectionDocument> {
    const id = uuidv7();
    const now = new Date();
    const connection: ConnectionDocument = {
      _id: id,
      kind: input.secret.kind,
      organisation_id: input.organisationId,
      connector_id: input.connectorId,
      credential_id: "",
      status: "ACTIVE",
      scopes: [],
      token_type: input.secret.kind,
      access_token: this.deps.secretBox.encrypt(input.secret.value, connectionSecretContext(id, "access_token")),
      pending_events: [newEvent("connection.created", "ACTIVE")],
      create_time: now,
      update_time: now,
    };
    if (input.provider !== undefined) {
      connection.provider = input.provider;
      // Where the catalog says the provider's API takes the key (its `api`), with no template values.
      const api = renderApi(this.deps.providers.get(input.provider)?.api, {}, {}, (url) => this.deps.outbound.refusal(url));
      if (api !== undefined) connection.api = api;
    }
    await this.deps.connections.insert(connection);
    this.deps.onEvent(id);
    return connection;
  }

  /** ReplaceStaticConnection: the new secret in place, `connection.reauthorized`; `kind_mismatch` for another kind. */
  async replaceStatic(organisationId: string, id: string, secret: StaticSecret): Promise<ConnectionDocument> {
    await this.withLease(organisationId, id, async (connection) => {
      if (connection.kind !== secret.kind) {
        throw new ConnectionError("kind_mismatch", `the connection is not of kind ${secret.kind === "api_key" ? "API_KEY" : "BASIC"}`);
      }
      await this.#activate(
        connection,
        { access_token: this.deps.secretBox.encrypt(secret.value, connectionSecretContext(id, "access_token")) },
        [],
        newEvent("connection.reauthorized", "ACTIVE"),
      );
    });
    return this.#created(id);
  }

  /** The catalog's `api` rendered for a new connection (see renderApi). */
  #api(profile: ProviderProfile, metadata: Record<string, string>): ConnectionApi | undefined {
    return renderApi(profile.api, profile.templateValues, metadata, (url) => this.deps.outbound.refusal(url));
  }

  /** A connection just written, as stored. */
  async #created(id: string): Promise<ConnectionDocument> {
    const connection = await this.deps.connections.findByIdUnscoped(id);
    if (connection === null) throw connectionNotFound();
    return connection;
  }

  /** The connection an import claimed, once inserted (waiting up to CLAIM_WAIT_MS for it); undefined when it never appears. */
  async #awaitImported(id: string): Promise<ConnectionDocument | undefined> {
    for (let waited = 0; ; waited += POLL_MS) {
      const existing = await this.#imported(id);
      if (existing !== undefined || waited >= CLAIM_WAIT_MS) return existing;
      await sleep(POLL_MS);
    }
  }

  /** The connection an import claimed, unless it is gone (never inserted, or deleted and purged); `busy` while its deletion is relayed. */
  async #imported(id: string): Promise<ConnectionDocument | undefined> {
    const connection = await this.deps.connections.findByIdUnscoped(id);
    if (connection === null) return undefined;
    if (connection.status === "DELETED") throw new ConnectionError("busy", "the connection this import made is being deleted - try again");
    return connection;
  }

  /**
   * A reconnect: replaces an existing connection's tokens, scopes and account in one write,
   * keeping its ID. Bound to an end user, the grant is held until ConfirmConnection and the old
   * tokens keep working (a PENDING connection just gets the new grant and a new confirmation).
   * A newer grant supersedes any held or unconfirmed one. A connection with a recorded account
   * takes only a grant that proves the same account: refused, changing nothing, with
   * `account_mismatch` when it names another and `account_unverified` when it names none (the
   * provider did not say, or said nothing usable). Without a recorded one, the new one is recorded.
   */
  async reauthorize(connectionId: string, grant: Grant): Promise<{ confirmation: string | undefined }> {
    return this.withLease(grant.organisationId, connectionId, async (connection) => {
      if (connection.credential_id !== grant.credentialId) throw connectionNotFound();
      const recorded = connection.external_account?.id;
      if (recorded !== undefined && grant.account === undefined) {
        throw new ConnectionError("account_unverified", "the provider did not say which account signed in, so it cannot be the connection's");
      }
      if (recorded !== undefined && grant.account?.id !== recorded) {
        throw new ConnectionError("account_mismatch", "the provider account differs from the connection's");
      }
      const now = new Date();
      const sealed = this.#seal(connectionId, grant, now);
      const superseded = supersededConfirmations(connection);
      const confirmation = grant.endUserId === undefined ? undefined : newConfirmation();
      if (confirmation !== undefined && connection.status !== "PENDING") {
        const held: HeldGrant = {
          ...sealed,
          end_user_id: grant.endUserId!,
          confirmation_hash: hashState(confirmation),
          hold_expire_time: new Date(now.getTime() + this.deps.confirmationTtlMs),
        };
        await this.deps.connections.update(connection, { set: { reauthorization: held, ...superseded } });
        return { confirmation };
      }
      const set: Partial<ConnectionDocument> = { ...sealed, refresh_token_time: now, ...superseded };
      const unset = grantFieldsMissing(sealed);
      if (confirmation !== undefined) {
        // Still PENDING: the new grant replaces the unconfirmed one, with a new confirmation.
        set.end_user_id = grant.endUserId;
        set.confirmation_hash = hashState(confirmation);
        set.pending_expire_time = new Date(now.getTime() + this.deps.confirmationTtlMs);
        unset.push("failed_confirmations");
        await this.deps.connections.update(connection, { set, unset });
        return { confirmation };
      }
      // Applied at once: a grant still held from an earlier reconnect must not overwrite it later.
      await this.#activate(connection, set, [...unset, "reauthorization"], newEvent("connection.reauthorized", "ACTIVE"));
      return { confirmation: undefined };
    });
  }

  /**
   * ConfirmConnection: activates a PENDING connection, or applies a reconnect's held grant, when
   * the end user and one-time code match. Wrong ones are counted; after 5, or once expired, the
   * pending connection is deleted (a held grant dropped, the connection kept as it was).
   */
  async confirm(organisationId: string, id: string, endUserId: string, confirmation: string): Promise<ConnectionDocument> {
    const confirmed = await this.withLease(organisationId, id, async (connection) => {
      const presented = hashState(confirmation);
      if ((connection.superseded_confirmation_hashes ?? []).some((superseded) => matches(presented, superseded))) {
        throw new ConnectionError("superseded", "a newer reconnect replaced the grant this confirmation was for");
      }
      const now = new Date();
      const held = connection.reauthorization;
      if (held !== undefined) {
        const expired = held.hold_expire_time <= now;
        if (expired || !matches(endUserId, held.end_user_id) || !matches(hashState(confirmation), held.confirmation_hash)) {
          const failures = (held.failed_confirmations ?? 0) + 1;
          if (expired || failures >= MAX_FAILED_CONFIRMATIONS) await this.deps.connections.update(connection, { unset: ["reauthorization"] });
          else await this.deps.connections.update(connection, { set: { reauthorization: { ...held, failed_confirmations: failures } } });
          throw wrongConfirmation();
        }
        const { end_user_id: _endUser, confirmation_hash: _hash, failed_confirmations: _failures, hold_expire_time: _expiry, ...grant } = held;
        await this.#activate(connection, { ...grant, refresh_token_time: now }, [...grantFieldsMissing(grant), "reauthorization"], newEvent("connection.reauthorized", "ACTIVE"));
        return true;
      }
      if (connection.status !== "PENDING" || connection.confirmation_hash === undefined) {
        throw new ConnectionError("not_waiting", "the connection is not waiting for confirmation");
      }
      const expired = connection.pending_expire_time !== undefined && connection.pending_expire_time <= now;
      if (expired || !matches(endUserId, connection.end_user_id) || !matches(hashState(confirmation), connection.confirmation_hash)) {
        const failures = (connection.failed_confirmations ?? 0) + 1;
        if (expired || failures >= MAX_FAILED_CONFIRMATIONS) await this.deps.connections.deletePending(connection);
        else await this.deps.connections.update(connection, { set: { failed_confirmations: failures } });
        throw wrongConfirmation();
      }
      await this.deps.connections.update(connection, {
        set: { status: "ACTIVE" },
        unset: ["confirmation_hash", "pending_expire_time", "failed_confirmations"],
        event: newEvent("connection.created", "ACTIVE"),
      });
      this.deps.onEvent(id);
      return true;
    });
    const connection = confirmed ? await this.deps.connections.findById(organisationId, id) : null;
    if (connection === null) throw connectionNotFound();
    return connection;
  }

  /**
   * Deletes a connection: its tokens go now, the document once the relay has published its
   * event. With `revoke`, first revokes at the credential's revocation URL (RFC 7009): the refresh
   * token when there is one (which ends the whole grant at most providers, §2.1), else the
   * access token.
   */
  async delete(organisationId: string, id: string, options: { revoke: boolean; keepIfRevocationFails: boolean }): Promise<RevocationResult> {
    return this.withLease(organisationId, id, async (connection) => {
      const revocation: RevocationResult = options.revoke ? await this.#revoke(connection) : { outcome: "not_requested" };
      if (revocation.outcome === "failed" && options.keepIfRevocationFails) {
        throw new ConnectionError("revocation_failed", `revocation failed (${revocation.error}) and the connection was kept`);
      }
      await this.deps.connections.update(connection, {
        set: { status: "DELETED" },
        unset: ["access_token", "refresh_token", "id_token", "extra_fields", "status_reason", "reauthorization"],
        event: newEvent("connection.deleted"),
      });
      this.deps.onEvent(id);
      return revocation;
    });
  }

  /**
   * An admin's explicit move (UpdateCredential `move_connections`): every connection of the
   * credential records the credential's current endpoints, so its tokens may be sent there from
   * now on, and one stopped because the endpoints had changed (`endpoint_changed`) is usable
   * again. Idempotent: when a lease stays busy the others are moved and the call fails with
   * `busy`, to be repeated.
   */
  async moveToCredentialEndpoints(credential: CredentialDocument): Promise<void> {
    let busy = 0;
    for (const id of await this.deps.connections.idsByCredential(credential.organisation_id, credential._id)) {
      try {
        await this.withLease(credential.organisation_id, id, async (connection) => {
          if (connection.credential_id !== credential._id) return;
          const endpoints = endpointsOf(profileFor(this.deps.providers, credential, connection.connection_config));
          const set: Partial<ConnectionDocument> = { ...endpoints };
          const unset: Array<keyof ConnectionDocument> = endpoints.revocation_url === undefined ? ["revocation_url"] : [];
          // The credential's own API base moves too; without one, the catalog's comes back at the next refresh.
          const api = credentialApi(credential, credential.provider);
          if (api !== undefined) set.api = api;
          else if (connection.api?.source === "credential") unset.push("api");
          if (connection.status === "NEEDS_REAUTHORIZATION" && connection.status_reason === "endpoint_changed") {
            set.status = "ACTIVE";
            unset.push("status_reason");
          }
          await this.deps.connections.update(connection, { set, unset });
        });
      } catch (error) {
        if (error instanceof ConnectionError && error.code === "not_found") continue;
        if (!(error instanceof ConnectionError && error.code === "busy")) throw error;
        busy++;
      }
    }
    if (busy > 0) throw new ConnectionError("busy", `${busy} connections were busy and not moved - try again`);
  }

  /**
   * The expiry job: deletes unconfirmed connections, with their tokens, and drops reconnect grants
   * nobody confirmed, with theirs, once their time is up, from the expiry notes (a connection
   * confirmed, deleted or given a later expiry since is left as it is, and its note dropped or
   * moved), under each connection's lease (a busy one is left for the next pass). Returns whether
   * a full batch was found.
   */
  async dropExpiredGrants(batch = 100): Promise<boolean> {
    const notes = await this.deps.connections.expiryNotesDue(new Date(), batch);
    for (const note of notes) {
      const lease = await this.tryLease(note._id);
      if (lease === null) continue;
      try {
        const connection = await this.deps.connections.findByIdUnscoped(note._id);
        const now = new Date();
        const pendingExpiry = connection?.status === "PENDING" ? connection.pending_expire_time : undefined;
        const holdExpiry = connection?.reauthorization?.hold_expire_time;
        const expiry = pendingExpiry ?? holdExpiry;
        if (expiry !== undefined && expiry > now) {
          await this.deps.connections.postponeExpiry(note._id, expiry);
          continue;
        }
        if (pendingExpiry !== undefined) await this.deps.connections.deletePending(connection!);
        else if (holdExpiry !== undefined) await this.deps.connections.update(connection!, { unset: ["reauthorization"] });
        await this.deps.connections.expiryHandled(note._id);
      } finally {
        await this.release(lease);
      }
    }
    return notes.length === batch;
  }

  /**
   * RFC 8628: the connection of a device authorization just started, PENDING (kind `device_code`,
   * no tokens, no event) until the poller records the outcome. Needs no lease: nobody else knows
   * the new ID yet. It has no `pending_expire_time`: the poller ends it at the device code's
   * expiry, with its event, rather than the confirmation expiry job.
   */
  async createDeviceCodePending(pending: {
    id: string;
    organisationId: string;
    connectorId: string;
    credentialId: string;
    scopes: string[];
    endpoints: ConnectionEndpoints;
    connectionConfig: Record<string, string>;
  }): Promise<ConnectionDocument> {
    const now = new Date();
    const connection: ConnectionDocument = {
      _id: pending.id,
      kind: "device_code",
      organisation_id: pending.organisationId,
      connector_id: pending.connectorId,
      credential_id: pending.credentialId,
      status: "PENDING",
      scopes: pending.scopes,
      token_type: "",
      ...pending.endpoints,
      pending_events: [],
      create_time: now,
      update_time: now,
    };
    if (Object.keys(pending.connectionConfig).length > 0) connection.connection_config = { ...pending.connectionConfig };
    await this.deps.connections.insert(connection);
    return connection;
  }

  /** The end user approved a device authorization: its tokens, ACTIVE, `connection.created`. Call it holding the lease. */
  async recordDeviceCodeApproved(connection: ConnectionDocument, grant: Grant): Promise<void> {
    const sealed = this.#seal(connection._id, grant, new Date());
    await this.#activate(connection, { ...sealed, refresh_token_time: new Date() }, [], newEvent("connection.created", "ACTIVE"));
  }

  /**
   * A device authorization that ended without tokens (`access_denied`, `expired_token`, another
   * provider error): the connection is deleted with a `connection.deleted` event that carries the
   * reason. Call it holding the lease.
   */
  async recordDeviceCodeEnded(connection: ConnectionDocument, reason: string): Promise<void> {
    await this.deps.connections.update(connection, {
      set: { status: "DELETED", status_reason: reason },
      event: newEvent("connection.deleted", undefined, reason),
    });
    this.deps.onEvent(connection._id);
  }

  /**
   * The directory's reconcile (a scan of `connections` and `connection_directory`, as the
   * outbox's start-up scan): adopts connections from before the directory (slots below the
   * others, in bulk), and under each connection's lease mends mirrors a failed or interrupted
   * write left stale and stops counting slots whose connection never came or is gone. Run at each
   * start until a pass finds nothing to do; the first such pass lets listings use the directory
   * (until then they query `connections` as before). Returns what it did and how many it left
   * because their lease was busy.
   */
  async reconcileDirectory(): Promise<{ mended: number; busy: number }> {
    const { connections } = this.deps;
    const { slots, owners } = await connections.directory.snapshot();
    const naming = new Map<string, DirectorySlotDocument[]>();
    const floors = new Map<string, number>();
    for (const slot of slots) {
      naming.set(slot.connection_id, [...(naming.get(slot.connection_id) ?? []), slot]);
      floors.set(organisationOf(slot), Math.min(floors.get(organisationOf(slot)) ?? 1, seqOf(slot)));
    }
    let mended = 0;
    let busy = 0;
    const underLease = async (id: string, change: (connection: ConnectionDocument | null) => Promise<void>): Promise<void> => {
      const lease = await this.tryLease(id);
      if (lease === null) return void busy++;
      try {
        await change(await connections.findByIdUnscoped(id));
        mended++;
      } finally {
        await this.release(lease);
      }
    };
    const adopt = new Map<string, Array<Pick<ConnectionDocument, "_id" | "connector_id" | "credential_id" | "status">>>();
    let seen = 0;
    for await (const connection of connections.everyConnectionForDirectory()) {
      seen++;
      const named = naming.get(connection._id) ?? [];
      naming.delete(connection._id);
      const seq = connection.directory_seq ?? owners.get(connection._id);
      if (seq === undefined && named[0] === undefined) {
        adopt.set(connection.organisation_id, [...(adopt.get(connection.organisation_id) ?? []), connection]);
      } else if (seq === undefined) {
        // Adopted by a pass cut short before its note: the slot is its own.
        await connections.directory.own(connection._id, seqOf(named[0]!));
        mended++;
      } else {
        const own = named.find((slot) => seqOf(slot) === seq);
        if (own !== undefined && own.status === connection.status && named.every((slot) => slot === own || slot.status === "DELETED")) continue;
        await underLease(connection._id, async (current) => {
          if (current !== null) await connections.mendDirectory(current, seq, named);
        });
      }
    }
    // Newest first, below every slot there is: the directory's order stays the order of IDs.
    for (const [organisationId, old] of adopt) {
      old.sort((a, b) => (a._id < b._id ? 1 : -1));
      await connections.directory.adopt(organisationId, Math.min(floors.get(organisationId) ?? 1, 1) - 1, old.map(slotOf));
      mended += old.length;
    }
    // Slots of connections not found: a claim whose insert never came (long enough ago), or a purged one.
    const settled = Date.now() - ORPHAN_SLOT_MS;
    for (const [id, named] of naming) {
      const counted = named.filter((slot) => slot.status !== "DELETED" && slot.claim_time.getTime() < settled);
      if (counted.length === 0) continue;
      await underLease(id, async (current) => {
        if (current === null) for (const slot of counted) await connections.directory.mirror(organisationOf(slot), seqOf(slot), "DELETED");
      });
    }
    if (mended === 0 && busy === 0) await connections.directory.markComplete(seen > 0);
    return { mended, busy };
  }

  // The refresh writes: the refresher holds the lease across the provider call and records each
  // step here.

  /** Recorded before the refresh request is sent: if the outcome is lost, the next holder knows. */
  async recordRefreshSent(connection: ConnectionDocument, now: Date): Promise<void> {
    await this.deps.connections.update(connection, { set: { refresh_sent_time: now, refresh_attempt_time: now } });
  }

  /**
   * A successful refresh: the new tokens (RFC 6749 §6: a new refresh token replaces the old one;
   * without one, the old one stays), ACTIVE, backoff cleared; `connection.recovered` when it was
   * failing.
   */
  async recordRefreshed(
    connection: ConnectionDocument,
    tokens: TokenSet,
    now: Date,
    adopted: ConnectionEndpoints | undefined,
    api: ConnectionApi | undefined,
  ): Promise<{ expireTime: Date | undefined; metadata: Record<string, string>; api: ConnectionApi | undefined }> {
    const seal = (field: string, value: string) => this.deps.secretBox.encrypt(value, connectionSecretContext(connection._id, field));
    const set: Partial<ConnectionDocument> = {
      status: "ACTIVE",
      access_token: seal("access_token", tokens.accessToken),
      token_type: tokens.tokenType,
      refresh_time: now,
      refresh_token_time: now,
      // A connection made before endpoints were recorded records the ones it used.
      ...adopted,
    };
    const unset: Array<keyof ConnectionDocument> = ["status_reason", "refresh_sent_time", "refresh_failures", "refresh_failing_since", "refresh_retry_time"];
    if (tokens.refreshToken !== undefined) set.refresh_token = seal("refresh_token", tokens.refreshToken);
    if (tokens.idToken !== undefined) set.id_token = seal("id_token", tokens.idToken);
    if (tokens.scopes !== undefined) set.scopes = tokens.scopes;
    // A refresh response may update what the catalog keeps (a moved `instance_url`).
    if (Object.keys(tokens.metadata).length > 0) set.metadata = { ...connection.metadata, ...tokens.metadata };
    // Rendered again from the metadata as it is now (and the catalog as it is now).
    if (api !== undefined) set.api = api;
    // Without `expires_in` (and no default lifetime known for the provider) the token has none.
    if (tokens.expiresIn !== undefined) set.expire_time = new Date(now.getTime() + tokens.expiresIn * 1000);
    else unset.push("expire_time");
    const event = connection.status === "REFRESH_FAILED" ? newEvent("connection.recovered", "ACTIVE") : undefined;
    await this.deps.connections.update(connection, { set, unset, event });
    if (event !== undefined) this.deps.onEvent(connection._id);
    return { expireTime: set.expire_time, metadata: set.metadata ?? connection.metadata ?? {}, api: set.api ?? connection.api };
  }

  /**
   * A refresh that failed for a transient reason: the next attempt waits, doubling from
   * `retryMinMs` up to `retryMaxMs`. `uncertain` (no answer: the provider may have acted on it)
   * keeps the sent mark for the next holder. With `mayGiveUp`, failing for longer than `giveUpMs`
   * ends in NEEDS_REAUTHORIZATION (`refresh_exhausted`); without (a connection that needs no end
   * user to renew), it keeps retrying. Throws the error to answer with.
   */
  async recordRefreshFailure(
    connection: ConnectionDocument,
    reason: string,
    now: Date,
    { uncertain, mayGiveUp }: { uncertain: boolean; mayGiveUp: boolean },
  ): Promise<never> {
    const since = connection.refresh_failing_since ?? now;
    if (mayGiveUp && now.getTime() - since.getTime() >= this.deps.giveUpMs) {
      await this.markNeedsReauthorization(connection, "refresh_exhausted");
      throw needsReauthorization("refresh_exhausted");
    }
    const failures = (connection.refresh_failures ?? 0) + 1;
    const delayMs = Math.min(this.deps.retryMinMs * 2 ** Math.min(failures - 1, 40), this.deps.retryMaxMs);
    const event = connection.status === "REFRESH_FAILED" ? undefined : newEvent("connection.refresh_failed", "REFRESH_FAILED", reason);
    await this.deps.connections.update(connection, {
      set: {
        status: "REFRESH_FAILED",
        status_reason: reason,
        refresh_attempt_time: now,
        refresh_failures: failures,
        refresh_failing_since: since,
        // Counted from the failure, not from the attempt (a timeout took a while).
        refresh_retry_time: new Date(Date.now() + delayMs),
      },
      unset: uncertain ? [] : ["refresh_sent_time"],
      // One event when the connection starts failing, not one per retry.
      event,
    });
    if (event !== undefined) this.deps.onEvent(connection._id);
    throw refreshFailed(delayMs);
  }

  async markNeedsReauthorization(connection: ConnectionDocument, reason: string): Promise<void> {
    await this.deps.connections.update(connection, {
      set: { status: "NEEDS_REAUTHORIZATION", status_reason: reason, refresh_attempt_time: new Date() },
      unset: ["refresh_sent_time", "refresh_failures", "refresh_failing_since", "refresh_retry_time"],
      event: newEvent("connection.needs_reauthorization", "NEEDS_REAUTHORIZATION", reason),
    });
    this.deps.onEvent(connection._id);
  }

  /** The grant as stored: tokens sealed to this connection. */
  #seal(id: string, grant: Grant, now: Date): StoredGrant {
    const seal = (field: string, value: string) => this.deps.secretBox.encrypt(value, connectionSecretContext(id, field));
    const { tokens } = grant;
    const stored: StoredGrant = {
      scopes: tokens.scopes ?? grant.requestedScopes,
      token_type: tokens.tokenType,
      access_token: seal("access_token", tokens.accessToken),
    };
    if (tokens.refreshToken !== undefined) stored.refresh_token = seal("refresh_token", tokens.refreshToken);
    if (tokens.idToken !== undefined) stored.id_token = seal("id_token", tokens.idToken);
    if (tokens.expiresIn !== undefined) stored.expire_time = new Date(now.getTime() + tokens.expiresIn * 1000);
    // The response's other fields may hold secrets too (Slack's user token).
    if (Object.keys(tokens.extra).length > 0) stored.extra_fields = seal("extra_fields", JSON.stringify(tokens.extra));
    if (grant.account !== undefined) stored.external_account = { ...grant.account };
    stored.token_url = grant.endpoints.token_url;
    if (grant.endpoints.revocation_url !== undefined) stored.revocation_url = grant.endpoints.revocation_url;
    if (Object.keys(grant.metadata).length > 0) stored.metadata = { ...grant.metadata };
    if (Object.keys(grant.connectionConfig).length > 0) stored.connection_config = { ...grant.connectionConfig };
    if (grant.api !== undefined) stored.api = grant.api;
    return stored;
  }

  /** Writes a replaced grant and makes the connection ACTIVE with a clean refresh history. */
  async #activate(connection: ConnectionDocument, set: Partial<ConnectionDocument>, unset: Array<keyof ConnectionDocument>, event: PendingEvent): Promise<void> {
    await this.deps.connections.update(connection, {
      set: { ...set, status: "ACTIVE" },
      unset: [
        ...unset,
        "status_reason",
        "confirmation_hash",
        "pending_expire_time",
        "failed_confirmations",
        "refresh_sent_time",
        "refresh_failures",
        "refresh_failing_since",
        "refresh_retry_time",
      ],
      event,
    });
    this.deps.onEvent(connection._id);
  }

  async #revoke(connection: ConnectionDocument): Promise<RevocationResult> {
    const credential = await this.deps.credentials.findById(connection.organisation_id, connection.credential_id);
    if (credential === null) return { outcome: "not_supported" };
    // The same hosts as the connection was made with.
    const profile = profileFor(this.deps.providers, credential, connection.connection_config);
    if (profile.revocationUrl === undefined) return { outcome: "not_supported" };
    // The token the provider's docs name; by default the refresh token, which ends the whole grant.
    const wanted = profile.revocation.token;
    const field = wanted === "access_token" || (wanted === "refresh_token_or_access_token" && connection.refresh_token === undefined) ? "access_token" : "refresh_token";
    const sealed = connection[field];
    if (sealed === undefined) return { outcome: "not_supported" };
    // The token goes only to the revocation endpoint in force when it was obtained, and the client
    // secret only with a credential still at that endpoint.
    const target = connectionTokenClient(connection, credential, profile, "revocation_url", this.deps);
    if (target === "no_endpoint") return { outcome: "not_supported" };
    if (target === "endpoint_changed") return { outcome: "failed", error: "the credential's endpoints changed since the connection was made" };
    try {
      await revokeToken(
        target.client,
        target.url,
        { value: this.deps.secretBox.decrypt(sealed, connectionSecretContext(connection._id, field)), hint: field },
        this.deps.fetch,
        profile.revocation,
      );
      return { outcome: "revoked" };
    } catch (error) {
      // Refused, unreachable or not confirmed: every provider-call failure is a failed revocation.
      if (error instanceof ProviderCallError) return { outcome: "failed", error: error.message };
      throw error;
    }
  }

}

/**
 * The first token request of a new connection: the provider's refusal becomes `grant_refused`
 * naming its error code, no answer `provider_unreachable` (the messages hold no secret).
 */
async function firstTokens(request: Promise<TokenSet>): Promise<TokenSet> {
  try {
    return await request;
  } catch (error) {
    if (!(error instanceof ProviderCallError)) throw error;
    // No usable answer (see isUnanswered): nothing is known about the credential yet.
    if (error.code === "unreachable" || error.code === "redirected" || error.code === "response_too_large") {
      throw new ConnectionError("provider_unreachable", "the provider's token endpoint did not answer usably - try again");
    }
    throw new ConnectionError("grant_refused", `the provider refused the token request (${error.oauthError ?? error.message}) and nothing was stored`);
  }
}

/** The optional grant fields a replacing grant does not have: they are removed. */
function grantFieldsMissing(grant: StoredGrant): Array<keyof ConnectionDocument> {
  return (["refresh_token", "id_token", "expire_time", "extra_fields", "revocation_url", "metadata", "connection_config", "api"] as const).filter(
    (field) => grant[field] === undefined,
  );
}

/** How many replaced grants' confirmations are remembered, to refuse them as superseded. */
const MAX_SUPERSEDED_CONFIRMATIONS = 5;

/**
 * The confirmation hashes to remember when a new grant replaces the connection's held or
 * unconfirmed one (nothing when there is none).
 */
function supersededConfirmations(connection: ConnectionDocument): Pick<ConnectionDocument, "superseded_confirmation_hashes"> {
  const replaced = [connection.reauthorization?.confirmation_hash, connection.status === "PENDING" ? connection.confirmation_hash : undefined];
  const hashes = replaced.filter((hash): hash is string => hash !== undefined);
  if (hashes.length === 0) return {};
  return { superseded_confirmation_hashes: [...(connection.superseded_confirmation_hashes ?? []), ...hashes].slice(-MAX_SUPERSEDED_CONFIRMATIONS) };
}

/** The one-time code ConfirmConnection needs, handed to the caller's return URL. */
function newConfirmation(): string {
  return randomBytes(32).toString("base64url");
}

function wrongConfirmation(): ConnectionError {
  return new ConnectionError("wrong_confirmation", "wrong end user or confirmation for this connection");
}

/** Compares secrets by their hashes, in constant time. */
function matches(presented: string, expected: string | undefined): boolean {
  if (expected === undefined) return false;
  return timingSafeEqual(hash("sha256", presented, "buffer"), hash("sha256", expected, "buffer"));
}

/**
 * Moves one connection's secrets to the primary key, under its lease, like every other
 * connection write (used by the re-encryption command, which runs without a broker).
 */
export async function reencryptConnection(
  connections: ConnectionStore,
  leases: LeaseStore,
  id: string,
  box: SecretBox,
): Promise<"moved" | "unchanged" | "busy"> {
  const leaseMs = 10_000;
  const lease = await leases.acquire(connectionLeaseKey(id), leaseMs, 50 * POLL_MS, POLL_MS);
  if (lease === null) return "busy";
  try {
    return (await connections.reencrypt(id, box, connectionSecretContext)) ? "moved" : "unchanged";
  } finally {
    await leases.release(lease);
  }
}
