import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { SecretBox } from "../crypto/secret-box.js";
import { isUnanswered, ProviderCallError } from "../network/provider-call-error.js";
import { countTokenRequest, type Metrics } from "../observability/metrics.js";
import type { ConnectionApi } from "../providers/api.js";
import type { ConnectionDocument, ConnectionStore } from "../store/connections.js";
import type { CredentialStore } from "../store/credentials.js";
import type { Lease } from "../store/leases.js";
import { ConnectionError, connectionNotFound, needsReauthorization, refreshFailed } from "./connection-errors.js";
import type { ConnectionLifecycle } from "./connection-lifecycle.js";
import { connectionTokenClient } from "./secrets.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import { profileFor, type ProviderProfile } from "../providers/profile.js";
import { obtainAgain, renewalOf } from "./renewal.js";
import { JwtBearerAssertionError } from "../oauth/jwt-bearer.js";
import { connectionSecretContext } from "../crypto/secret-contexts.js";
import { renderApi } from "../providers/api.js";
import type { OutboundPolicy } from "../network/address-policy.js";

export interface AccessToken {
  accessToken: string;
  tokenType: string;
  expireTime: Date | undefined;
  /** The connection's metadata (never a secret). */
  metadata: Record<string, string>;
  /** Where the provider's API lives for this connection, when the catalog says. */
  api: ConnectionApi | undefined;
}

export interface TokenRefresherDeps {
  connections: ConnectionStore;
  credentials: CredentialStore;
  lifecycle: ConnectionLifecycle;
  secretBox: SecretBox;
  /** The bounded fetch for provider calls. */
  fetch: typeof fetch;
  providers: ProviderCatalog;
  /** Checks provider-sent URLs used as API bases. */
  outbound: OutboundPolicy;
  /** Tokens closer than this to expiry are refreshed first. */
  minValidityMs: number;
  /** The provider-call timeout. */
  requestTimeoutMs: number;
  /**
   * Refresh tokens unused for this long are refreshed in the background, or after half the
   * provider's documented idle lifetime when that is sooner.
   */
  idleRefreshAfterMs: number;
  /** Background refreshes per second, per instance, at most. */
  idleRefreshPerSecond: number;
  metrics: Metrics;
  logger: Logger;
}

const POLL_MS = 100;
/** Time left on the lease, beyond the provider timeout, for the writes after the answer. */
const LEASE_SEND_MARGIN_MS = 2_000;
/**
 * A connection is force-refreshed at most once per this window, whatever its state (a failed
 * attempt counts too), and a token a refresh just produced is handed out for up to this long
 * (see fresh).
 */
export const FORCE_REFRESH_WINDOW_MS = 10_000;

/**
 * Hands out access tokens that stay valid for the margin, refreshing them when needed (RFC 6749
 * §6) or when the caller says the provider refused the current one (`force`). Exactly one refresh
 * request per expiry reaches the provider, across every broker instance: the refresher holds the
 * connection's lease, and everyone else waits for the stored result instead of refreshing too
 * (providers that rotate refresh tokens revoke the whole family when an old one is used twice,
 * RFC 9700 §4.14.2). Callers in one process share one wait. A failing provider is retried with
 * backoff, not on every call. A holder that crashes loses its lease when it expires; the next
 * holder finds the refresh marked as sent, and knows its outcome is uncertain.
 */
export class TokenRefresher {
  readonly #inflight = new Map<string, Promise<AccessToken>>();
  readonly #waitMs: number;
  /** Providers whose refresh tokens lapse sooner than twice the idle period: their own period. */
  readonly #providerIdleRules: ReadonlyArray<{ provider: string; afterMs: number }>;

  constructor(private readonly deps: TokenRefresherDeps) {
    this.#providerIdleRules = deps.providers
      .list()
      .flatMap((entry) => {
        const lifetime = entry.token?.refresh_token_idle_lifetime;
        // Halfway through the documented lifetime leaves room for a failing provider's backoff.
        return lifetime === undefined ? [] : [{ provider: entry.id, afterMs: (lifetime * 1000) / 2 }];
      })
      .filter((rule) => rule.afterMs < deps.idleRefreshAfterMs);
    // Long enough to outlast a crashed holder's lease and then refresh once more.
    this.#waitMs = deps.lifecycle.leaseMs + deps.requestTimeoutMs + 2_000;
  }

  /**
   * `force`: the provider refused the current token. `onSharedWait` is called when this call
   * joins a refresh another call in this process is doing.
   */
  async getAccessToken(
    organisationId: string,
    connectionId: string,
    options: { force?: boolean; onSharedWait?: () => void } = {},
  ): Promise<AccessToken> {
    const force = options.force === true;
    const document = await this.deps.connections.findById(organisationId, connectionId);
    if (document === null) throw connectionNotFound();
    const started = new Date();
    const ready = this.#ready(document, force, started);
    if (ready !== undefined) return ready;
    // Forced and ordinary callers wait apart: an ordinary refresh may find the token still good.
    const key = `${connectionId}:${force}`;
    let shared = this.#inflight.get(key);
    if (shared === undefined) {
      shared = this.#refreshOrWait(document, force, started).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, shared);
    } else {
      options.onSharedWait?.();
    }
    return shared;
  }

  /**
   * The stored token when it can be handed out as it is; undefined when it needs a refresh now.
   * Throws when it never can be, or when a needed refresh is backing off (without calling the
   * provider).
   */
  #ready(document: ConnectionDocument, force: boolean, started: Date, underLease = false): AccessToken | undefined {
    if (document.status === "DELETED") throw connectionNotFound();
    if (document.status === "PENDING") {
      const waitingFor = document.kind === "device_code" ? "its end user to approve the device authorization" : "ConfirmConnection";
      throw new ConnectionError("pending", `the connection is waiting for ${waitingFor}`);
    }
    if (document.status === "NEEDS_REAUTHORIZATION") throw needsReauthorization(document.status_reason);
    if (document.access_token === undefined) throw needsReauthorization("no_access_token");
    const renewal = renewalOf(document);
    // A static secret is never refreshed: forced or not, the stored value is the answer.
    if (renewal === "static") return this.#handOut(document, document.access_token);
    const now = Date.now();
    const expiresIn = document.expire_time === undefined ? Infinity : document.expire_time.getTime() - now;
    const usable = force
      ? // Someone refreshed within the window (maybe on another instance, maybe for this caller):
        // that token is the answer.
        document.refresh_time !== undefined && document.refresh_time.getTime() > Math.min(now - FORCE_REFRESH_WINDOW_MS, started.getTime() - 1)
      : // A token that cannot be renewed (no refresh token) is handed out while it lasts, even
        // inside the margin; one that can be obtained again from the credential alone is renewed.
        expiresIn >= this.deps.minValidityMs ||
        (renewal === "refresh_token" && document.refresh_token === undefined && expiresIn > 0) ||
        fresh(document, now);
    if (usable) return this.#handOut(document, document.access_token);
    let retryAt = document.refresh_retry_time?.getTime() ?? 0;
    // At most one forced refresh per window in every state, failing ones included (issue 20,
    // item 3: the backoff alone let 4 through in 10 s). A refresh still in flight elsewhere
    // (sent, no outcome yet) is waited for instead; under the lease there is none.
    const attempt = document.refresh_attempt_time?.getTime();
    if (force && attempt !== undefined && (underLease || document.refresh_sent_time === undefined)) {
      retryAt = Math.max(retryAt, attempt + FORCE_REFRESH_WINDOW_MS);
    }
    if (retryAt > now) throw refreshFailed(retryAt - now);
    return undefined;
  }

  #handOut(document: ConnectionDocument, sealed: string): AccessToken {
    return {
      accessToken: this.deps.secretBox.decrypt(sealed, connectionSecretContext(document._id, "access_token")),
      tokenType: document.token_type,
      expireTime: document.expire_time,
      metadata: document.metadata ?? {},
      api: document.api,
    };
  }

  async #refreshOrWait(seen: ConnectionDocument, force: boolean, started: Date): Promise<AccessToken> {
    const deadline = Date.now() + this.#waitMs;
    while (Date.now() < deadline) {
      const lease = await this.deps.lifecycle.tryLease(seen._id);
      if (lease !== null) {
        try {
          // Whoever held the lease before may have refreshed already: look again.
          const current = await this.deps.connections.findByIdUnscoped(seen._id);
          if (current === null) throw connectionNotFound();
          return this.#ready(current, force, started, true) ?? (await this.#refresh(current, lease));
        } finally {
          await this.deps.lifecycle.release(lease);
        }
      }
      await sleep(POLL_MS);
      const document = await this.deps.connections.findByIdUnscoped(seen._id);
      if (document === null) throw connectionNotFound();
      const ready = this.#ready(document, force, started);
      if (ready !== undefined) return ready;
    }
    throw new ConnectionError("refresh_timeout", "the token refresh did not finish in time - try again");
  }

  /**
   * Refreshes under the lease and records the outcome. The refresh is recorded as sent before it
   * is sent: a holder that finds that mark from before did not learn the outcome (a timeout, a
   * crash), so the provider may have rotated the refresh token already. It sends the stored one
   * once more (the protocol offers nothing better), and an `invalid_grant` then means the token
   * was most likely spent by the lost refresh: `refresh_token_reused`. A connection that obtains
   * its token again from the credential alone (client credentials) never needs reauthorization:
   * any refusal is retried with backoff, so fixing the credential brings it back.
   */
  async #refresh(document: ConnectionDocument, lease: Lease): Promise<AccessToken> {
    const log = this.deps.logger.child({ connection_id: document._id, organisation_id: document.organisation_id });
    const { lifecycle } = this.deps;
    const renewal = renewalOf(document);
    if (renewal === "refresh_token" && document.refresh_token === undefined) {
      await lifecycle.markNeedsReauthorization(document, "no_refresh_token");
      throw needsReauthorization("no_refresh_token");
    }
    const credential = await this.deps.credentials.findById(document.organisation_id, document.credential_id);
    if (credential === null) {
      await lifecycle.markNeedsReauthorization(document, "credential_deleted");
      throw needsReauthorization("credential_deleted");
    }
    // The refresh token goes only to the token endpoint it came from, and the client secret only
    // with a credential still at that endpoint; templated hosts from the connection's own values.
    const profile = profileFor(this.deps.providers, credential, document.connection_config);
    const target = connectionTokenClient(document, credential, profile, "token_url", this.deps);
    if (typeof target === "string") {
      log.warn({ outcome: "endpoint_changed" }, "the credential's token endpoint changed since the connection was made; not refreshing");
      await lifecycle.markNeedsReauthorization(document, "endpoint_changed");
      throw needsReauthorization("endpoint_changed");
    }
    // The request must end (answer or timeout) before anyone else may take the lease over: after
    // slow database calls there may no longer be time for that, and then nothing is sent.
    if (lease.expireTime.getTime() - Date.now() < this.deps.requestTimeoutMs + LEASE_SEND_MARGIN_MS) {
      throw new ConnectionError("refresh_timeout", "the token refresh did not finish in time - try again");
    }
    const uncertain = document.refresh_sent_time !== undefined;
    const now = new Date();
    await lifecycle.recordRefreshSent(document, now);
    try {
      const tokens = await countTokenRequest(
        this.deps.metrics,
        "refresh",
        obtainAgain(document, target.client, profile, credential, this.deps.secretBox, this.deps.fetch),
      );
      // A credential's own API base stays as recorded; the catalog's is rendered again (its metadata may change).
      const api = document.api?.source === "credential" ? undefined : renderApi(profile.api, profile.templateValues, { ...document.metadata, ...tokens.metadata }, (url) => this.deps.outbound.refusal(url), profile.providerId);
      const stored = await lifecycle.recordRefreshed(document, tokens, now, target.adopted, api);
      log.info(
        { outcome: document.status === "REFRESH_FAILED" ? "recovered" : "refreshed", rotated: tokens.refreshToken !== undefined },
        "access token refreshed",
      );
      return { accessToken: tokens.accessToken, tokenType: tokens.tokenType, expireTime: stored.expireTime, metadata: stored.metadata, api: stored.api };
    } catch (error) {
      if (renewal === "refresh_token" && error instanceof ProviderCallError && error.code === "oauth_error" && endsGrant(error.oauthError, profile.token.errors)) {
        // RFC 6749 §5.2 invalid_grant, or a code the provider's docs say ends the grant (Slack's
        // HTTP-200 invalid_refresh_token): retrying cannot help, only the end user can.
        const reason = error.oauthError !== "invalid_grant" ? error.oauthError! : uncertain ? "refresh_token_reused" : "invalid_grant";
        log.warn({ outcome: reason }, "refresh token rejected; the connection needs reauthorization");
        await lifecycle.markNeedsReauthorization(document, reason);
        throw needsReauthorization(reason);
      }
      if (error instanceof ProviderCallError) {
        const reason = error.oauthError ?? "refresh_failed";
        // Without an answer the provider may have rotated the token: the mark stays.
        const unanswered = isUnanswered(error);
        log.warn({ outcome: "refresh_failed", reason, err: error }, "refresh failed; retried after backoff");
        return lifecycle.recordRefreshFailure(document, reason, now, { uncertain: unanswered, mayGiveUp: renewal === "refresh_token" });
      }
      if (error instanceof JwtBearerAssertionError) {
        // The credential lost its key (or its service account): nothing was sent; a new key fixes it.
        log.warn({ outcome: "refresh_failed", reason: "no_signing_key" }, "the JWT bearer assertion could not be signed; retried after backoff");
        return lifecycle.recordRefreshFailure(document, "no_signing_key", now, { uncertain: false, mayGiveUp: false });
      }
      throw error;
    }
  }

  /**
   * The idle-refresh job: refreshes connections whose refresh token has not been used for
   * `idleRefreshAfterMs`, so that rarely used ones do not lapse (Google's lapse after six months
   * unused, Atlassian's after 90 days, Box's after 60). Safe with many instances: each
   * connection is refreshed under its lease and checked again under it, so it is refreshed once.
   * Spread out: at most `idleRefreshPerSecond` refreshes per second per instance. Returns whether
   * it found work.
   */
  async refreshIdle(batch = 20): Promise<boolean> {
    let full = await this.#refreshIdleOnce(this.deps.idleRefreshAfterMs, undefined, batch);
    for (const rule of this.#providerIdleRules) {
      const credentialIds = await this.deps.credentials.idsByProvider(rule.provider);
      if (credentialIds.length > 0) full = (await this.#refreshIdleOnce(rule.afterMs, credentialIds, batch)) || full;
    }
    return full;
  }

  /** The shortest idle period in force: the background job looks a few times per period. */
  get shortestIdleMs(): number {
    return Math.min(this.deps.idleRefreshAfterMs, ...this.#providerIdleRules.map((rule) => rule.afterMs));
  }

  async #refreshIdleOnce(afterMs: number, credentialIds: readonly string[] | undefined, batch: number): Promise<boolean> {
    const now = new Date();
    const cutoff = new Date(now.getTime() - afterMs);
    const candidates = await this.deps.connections.findIdle(cutoff, now, batch, credentialIds);
    // Instances scanning at once start at different places.
    candidates.sort(() => Math.random() - 0.5);
    const spacingMs = 1000 / this.deps.idleRefreshPerSecond;
    let last = 0;
    for (const candidate of candidates) {
      const wait = last + spacingMs - Date.now();
      if (wait > 0) await sleep(wait);
      const lease = await this.deps.lifecycle.tryLease(candidate._id);
      if (lease === null) continue; // someone is refreshing or changing it right now
      try {
        const current = await this.deps.connections.findByIdUnscoped(candidate._id);
        if (current === null || !isIdle(current, new Date(Date.now() - afterMs), new Date())) continue;
        last = Date.now();
        await this.#refresh(current, lease).catch((error: unknown) => {
          if (!(error instanceof ConnectionError)) throw error;
        });
      } finally {
        await this.deps.lifecycle.release(lease);
      }
    }
    return candidates.length === batch;
  }
}

/**
 * A token a refresh produced moments ago is handed out even inside the margin: a provider whose
 * tokens live shorter than BROKER_TOKEN_MIN_VALIDITY would otherwise be asked on every call
 * (issue 20, item 3: 147 calls, 147 refreshes). Fresh for 10 s (the forced-refresh window: at
 * most one non-forced refresh per connection per 10 s) or half the token's lifetime when that is
 * shorter, so what is handed out always has at least half its lifetime left.
 */
function fresh(document: ConnectionDocument, now: number): boolean {
  if (document.refresh_time === undefined || document.expire_time === undefined) return false;
  const obtained = document.refresh_time.getTime();
  const lifetime = document.expire_time.getTime() - obtained;
  return now - obtained < Math.min(FORCE_REFRESH_WINDOW_MS, lifetime / 2);
}

/**
 * Whether a refresh error code ends the grant: the entry's permanent codes, and RFC 6749's
 * invalid_grant unless the entry calls it transient. Other codes are retried after backoff.
 */
function endsGrant(code: string | undefined, errors: ProviderProfile["token"]["errors"]): boolean {
  if (code === undefined || errors.transient.includes(code)) return false;
  return code === "invalid_grant" || errors.permanent.includes(code);
}

/** The same test as the store's idle scan, made again under the lease. */
function isIdle(connection: ConnectionDocument, cutoff: Date, now: Date): boolean {
  const lastUsed = connection.refresh_token_time ?? connection.create_time;
  return (
    (connection.status === "ACTIVE" || connection.status === "REFRESH_FAILED") &&
    connection.refresh_token !== undefined &&
    lastUsed <= cutoff &&
    (connection.refresh_retry_time === undefined || connection.refresh_retry_time <= now)
  );
}
