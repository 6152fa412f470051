import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { SecretBox } from "../crypto/secret-box.js";
import { newEvent } from "../events/connection-events.js";
import { OutboundError } from "../outbound/bounded-fetch.js";
import { refreshAccessToken } from "../oauth/token-exchange.js";
import { countTokenRequest, type Metrics } from "../observability/metrics.js";
import { TokenResponseError } from "../oauth/token-response.js";
import type { ConnectionDocument, ConnectionStore } from "../store/connections.js";
import type { CredentialStore } from "../store/credentials.js";
import type { LeaseStore } from "../store/leases.js";
import { connectionSecretContext, connectionTokenClient } from "./secrets.js";
import { type ProviderCatalog, profileFor } from "../providers/catalog.js";

export interface AccessToken {
  accessToken: string;
  tokenType: string;
  expireTime: Date | undefined;
  /** The connection's metadata (never a secret). */
  metadata: Record<string, string>;
}

export interface TokenRefresherDeps {
  connections: ConnectionStore;
  credentials: CredentialStore;
  leases: LeaseStore;
  secretBox: SecretBox;
  /** The bounded fetch for provider calls. */
  fetch: typeof fetch;
  providers: ProviderCatalog;
  /** Tokens closer than this to expiry are refreshed first. */
  minValidityMs: number;
  /** The provider-call timeout: a refresh holds its lease at least this long. */
  requestTimeoutMs: number;
  /** Called after a change that recorded an event, so the relay publishes it now. */
  onEvent: (connectionId: string) => void;
  metrics: Metrics;
  logger: Logger;
}

const POLL_MS = 100;

/** The lease a connection is refreshed (or otherwise changed) under. */
export function connectionLeaseKey(connectionId: string): string {
  return `connection:${connectionId}`;
}

/**
 * Hands out access tokens that stay valid for the margin, refreshing them when needed (RFC 6749
 * §6). Exactly one refresh request per expiry reaches the provider, across every broker
 * instance: the refresher holds the connection's lease in MongoDB, and everyone else waits for
 * the stored result instead of refreshing too (providers that rotate refresh tokens revoke the
 * whole family when an old one is used twice, RFC 9700 §4.14.2). Callers in one process share one
 * wait. A holder that crashes loses its lease when it expires, and the next caller takes over.
 */
export class TokenRefresher {
  readonly #inflight = new Map<string, Promise<AccessToken>>();
  readonly #leaseMs: number;
  readonly #waitMs: number;

  constructor(private readonly deps: TokenRefresherDeps) {
    // Long enough for the provider call to time out before anyone takes over.
    this.#leaseMs = deps.requestTimeoutMs + 5_000;
    // Long enough to outlast a crashed holder's lease and then refresh once more.
    this.#waitMs = this.#leaseMs + deps.requestTimeoutMs + 2_000;
  }

  get leaseMs(): number {
    return this.#leaseMs;
  }

  /** `onSharedWait` is called when this call joins a refresh another call in this process is doing. */
  async getAccessToken(organisationId: string, connectionId: string, onSharedWait?: () => void): Promise<AccessToken> {
    const document = await this.deps.connections.findById(organisationId, connectionId);
    if (document === null) throw notFound();
    const ready = this.#usable(document);
    if (ready !== undefined) return ready;
    let shared = this.#inflight.get(connectionId);
    if (shared === undefined) {
      shared = this.#refreshOrWait(document).finally(() => this.#inflight.delete(connectionId));
      this.#inflight.set(connectionId, shared);
    } else {
      onSharedWait?.();
    }
    return shared;
  }

  /** The stored token when it can be handed out as it is; throws when it never can. */
  #usable(document: ConnectionDocument): AccessToken | undefined {
    if (document.status === "DELETED") throw notFound();
    if (document.status === "PENDING") {
      throw new ConnectError("the connection is waiting for ConfirmConnection", Code.FailedPrecondition);
    }
    if (document.status === "NEEDS_REAUTHORIZATION") throw needsReauthorization(document.status_reason);
    if (document.access_token === undefined) throw needsReauthorization("no_access_token");
    const expiresIn = document.expire_time === undefined ? Infinity : document.expire_time.getTime() - Date.now();
    // A token without a refresh token is handed out while it lasts, even inside the margin.
    if (expiresIn >= this.deps.minValidityMs || (document.refresh_token === undefined && expiresIn > 0)) {
      return {
        accessToken: this.deps.secretBox.decrypt(document.access_token, connectionSecretContext(document._id, "access_token")),
        tokenType: document.token_type,
        expireTime: document.expire_time,
        metadata: document.metadata ?? {},
      };
    }
    return undefined;
  }

  async #refreshOrWait(seen: ConnectionDocument): Promise<AccessToken> {
    const started = new Date();
    const deadline = Date.now() + this.#waitMs;
    let document: ConnectionDocument | null = seen;
    while (Date.now() < deadline) {
      const lease = await this.deps.leases.tryAcquire(connectionLeaseKey(seen._id), this.#leaseMs);
      if (lease !== null) {
        try {
          // Whoever held the lease before may have refreshed already: look again.
          const current = await this.deps.connections.findByIdUnscoped(seen._id);
          if (current === null) throw notFound();
          return this.#usable(current) ?? this.#throwIfJustFailed(current, started) ?? (await this.#refresh(current));
        } finally {
          await this.deps.leases.release(lease);
        }
      }
      await sleep(POLL_MS);
      document = await this.deps.connections.findByIdUnscoped(seen._id);
      if (document === null) throw notFound();
      const ready = this.#usable(document);
      if (ready !== undefined) return ready;
      this.#throwIfJustFailed(document, started);
    }
    throw new ConnectError("the token refresh did not finish in time - try again", Code.Unavailable);
  }

  /** Another caller's refresh failed while this one waited: share its outcome, do not retry. */
  #throwIfJustFailed(document: ConnectionDocument, since: Date): undefined {
    if (document.status === "REFRESH_FAILED" && document.refresh_attempt_time !== undefined && document.refresh_attempt_time >= since) {
      throw refreshFailed();
    }
    return undefined;
  }

  /** Refreshes under the lease and stores the outcome. */
  async #refresh(document: ConnectionDocument): Promise<AccessToken> {
    const log = this.deps.logger.child({ connection_id: document._id, organisation_id: document.organisation_id });
    const now = new Date();
    if (document.refresh_token === undefined) {
      await this.#markNeedsReauthorization(document, "no_refresh_token");
      throw needsReauthorization("no_refresh_token");
    }
    const credential = await this.deps.credentials.findById(document.organisation_id, document.credential_id);
    if (credential === null) {
      await this.#markNeedsReauthorization(document, "credential_deleted");
      throw needsReauthorization("credential_deleted");
    }
    // The refresh token goes only to the token endpoint it came from, and the client secret only
    // with a credential still at that endpoint.
    // The same hosts as the connection was made with (its connection_config).
    const profile = profileFor(this.deps.providers, credential, document.connection_config);
    const target = connectionTokenClient(document, credential, profile, "token_url", this.deps.secretBox);
    if (typeof target === "string") {
      log.warn({ outcome: "endpoint_changed" }, "the credential's token endpoint changed since the connection was made; not refreshing");
      await this.#markNeedsReauthorization(document, "endpoint_changed");
      throw needsReauthorization("endpoint_changed");
    }
    const refreshToken = this.deps.secretBox.decrypt(document.refresh_token, connectionSecretContext(document._id, "refresh_token"));
    try {
      const tokens = await countTokenRequest(this.deps.metrics, "refresh", refreshAccessToken(target.client, refreshToken, this.deps.fetch));
      const seal = (field: string, value: string) => this.deps.secretBox.encrypt(value, connectionSecretContext(document._id, field));
      const set: Partial<ConnectionDocument> = {
        status: "ACTIVE",
        access_token: seal("access_token", tokens.accessToken),
        token_type: tokens.tokenType,
        refresh_attempt_time: now,
        // A connection made before endpoints were recorded records the ones it used.
        ...target.adopted,
      };
      const unset: Array<keyof ConnectionDocument> = ["status_reason"];
      // RFC 6749 §6: a new refresh token replaces the old one; without one, the old one stays.
      if (tokens.refreshToken !== undefined) set.refresh_token = seal("refresh_token", tokens.refreshToken);
      if (tokens.idToken !== undefined) set.id_token = seal("id_token", tokens.idToken);
      if (tokens.scopes !== undefined) set.scopes = tokens.scopes;
      // A refresh response may update what the catalog keeps (a moved `instance_url`).
      if (Object.keys(tokens.metadata).length > 0) set.metadata = { ...document.metadata, ...tokens.metadata };
      if (tokens.expiresIn !== undefined) set.expire_time = new Date(now.getTime() + tokens.expiresIn * 1000);
      else unset.push("expire_time");
      await this.deps.connections.update(document._id, { set, unset });
      log.info({ outcome: "refreshed", rotated: tokens.refreshToken !== undefined }, "access token refreshed");
      return { accessToken: tokens.accessToken, tokenType: tokens.tokenType, expireTime: set.expire_time, metadata: set.metadata ?? document.metadata ?? {} };
    } catch (error) {
      if (error instanceof TokenResponseError && error.oauthError === "invalid_grant") {
        log.warn({ outcome: "invalid_grant" }, "refresh token rejected; the connection needs reauthorization");
        await this.#markNeedsReauthorization(document, "invalid_grant");
        throw needsReauthorization("invalid_grant");
      }
      if (error instanceof TokenResponseError || error instanceof OutboundError) {
        log.warn({ outcome: "refresh_failed", err: error }, "refresh failed; will retry on the next call");
        const reason = error instanceof TokenResponseError && error.oauthError !== undefined ? error.oauthError : "refresh_failed";
        await this.deps.connections.update(document._id, {
          set: { status: "REFRESH_FAILED", status_reason: reason, refresh_attempt_time: now },
          // One event when the connection starts failing, not one per retry.
          event: document.status === "REFRESH_FAILED" ? undefined : newEvent("connection.refresh_failed", "REFRESH_FAILED", reason),
        });
        this.deps.onEvent(document._id);
        throw refreshFailed();
      }
      throw error;
    }
  }

  async #markNeedsReauthorization(document: ConnectionDocument, reason: string): Promise<void> {
    await this.deps.connections.update(document._id, {
      set: { status: "NEEDS_REAUTHORIZATION", status_reason: reason, refresh_attempt_time: new Date() },
      event: newEvent("connection.needs_reauthorization", "NEEDS_REAUTHORIZATION", reason),
    });
    this.deps.onEvent(document._id);
  }
}

function notFound(): ConnectError {
  return new ConnectError("connection not found", Code.NotFound);
}

function needsReauthorization(reason: string | undefined): ConnectError {
  return new ConnectError(`the connection needs reauthorization (${reason ?? "unknown"}) so the end user must connect again`, Code.FailedPrecondition);
}

function refreshFailed(): ConnectError {
  return new ConnectError("refreshing the access token failed at the provider - try again later", Code.Unavailable);
}
