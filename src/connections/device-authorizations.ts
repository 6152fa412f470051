import type { Logger } from "pino";
import { v7 as uuidv7 } from "uuid";
import { connectionSecretContext } from "../crypto/secret-contexts.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { DomainError } from "../errors.js";
import { isUnanswered, ProviderCallError } from "../network/provider-call-error.js";
import { normaliseScopes } from "../oauth/authorize-url.js";
import { type DeviceAuthorization, pollDeviceToken, requestDeviceAuthorization, SLOW_DOWN_SECONDS } from "../oauth/device-authorization.js";
import { discoverAuthorizationServer } from "../oauth/discovery.js";
import type { TokenSet } from "../oauth/token-response.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import { type ProviderProfile, profileFor } from "../providers/profile.js";
import type { ConnectionDocument, ConnectionStore } from "../store/connections.js";
import type { CredentialDocument, CredentialStore } from "../store/credentials.js";
import type { DeviceAuthorizationStore } from "../store/device-authorizations.js";
import type { ConnectionLifecycle } from "./connection-lifecycle.js";
import { connectionTokenClient, endpointsOf, tokenClientFor } from "./secrets.js";

export interface DeviceAuthorizationsDeps {
  deviceAuthorizations: DeviceAuthorizationStore;
  connections: ConnectionStore;
  credentials: CredentialStore;
  lifecycle: ConnectionLifecycle;
  secretBox: SecretBox;
  /** The bounded, policy-checked fetch for provider calls. */
  fetch: typeof fetch;
  providers: ProviderCatalog;
  logger: Logger;
}

/** What the end user is shown; the device code stays here. */
export interface StartedDeviceAuthorization {
  connection: ConnectionDocument;
  authorization: Omit<DeviceAuthorization, "deviceCode">;
  expireTime: Date;
}

/** The provider's answers to a poll that end the device authorization (RFC 8628 §3.5). */
const KEEP_POLLING = new Set(["authorization_pending", "slow_down"]);

/**
 * The device authorization grant (RFC 8628): starts one (the provider's codes, a PENDING
 * connection and a note in `device_authorizations`), and polls the due ones. Each poll happens
 * holding the connection's lease and re-reads the note under it, and the next poll's time is
 * written before the request is sent, so across instances and restarts one device code is polled
 * once per interval.
 */
export class DeviceAuthorizations {
  constructor(private readonly deps: DeviceAuthorizationsDeps) {}

  /** What decrypting a credential's client secret needs (and where its use is recorded). */
  get #secretDeps() {
    return { secretBox: this.deps.secretBox, credentials: this.deps.credentials };
  }

  async start(input: {
    organisationId: string;
    connectorId: string;
    credential: CredentialDocument;
    scopes: readonly string[];
  }): Promise<StartedDeviceAuthorization> {
    const { credential } = input;
    const profile = profileFor(this.deps.providers, credential, {});
    const scopes = normaliseScopes(input.scopes, undefined, profile.authorize.scopeSeparator);
    const endpoint = await this.#deviceAuthorizationEndpoint(profile);
    let authorization: DeviceAuthorization;
    try {
      const scope = scopes.length === 0 ? undefined : scopes.join(profile.authorize.scopeSeparator);
      authorization = await requestDeviceAuthorization(tokenClientFor(credential, profile, this.#secretDeps), endpoint, scope, this.deps.fetch);
    } catch (error) {
      if (isUnanswered(error)) throw new DomainError("busy", "the device authorization endpoint did not answer - try again");
      if (!(error instanceof ProviderCallError)) throw error;
      const named = error.oauthError === undefined ? error.message : `"${error.oauthError}"`;
      throw new DomainError("precondition_failed", `the device authorization endpoint refused the request (${named})`);
    }
    const id = uuidv7();
    const now = new Date();
    const expireTime = new Date(now.getTime() + authorization.expiresIn * 1000);
    // The note first: a crash in between leaves a note without a connection, which the poller drops.
    await this.deps.deviceAuthorizations.insert({
      _id: id,
      organisation_id: input.organisationId,
      device_code: this.deps.secretBox.encrypt(authorization.deviceCode, connectionSecretContext(id, "device_code")),
      interval_seconds: authorization.interval,
      next_poll_time: nextPollTime(now, authorization.interval, expireTime),
      expire_time: expireTime,
      create_time: now,
    });
    const connection = await this.deps.lifecycle.createDeviceCodePending({
      id,
      organisationId: input.organisationId,
      connectorId: input.connectorId,
      credentialId: credential._id,
      scopes,
      endpoints: endpointsOf(profile),
      connectionConfig: {},
    });
    const { deviceCode: _secret, ...shown } = authorization;
    return { connection, authorization: shown, expireTime };
  }

  /** Polls the device codes that are due (a busy one is left to its holder). Returns whether a full batch was found. */
  async pollDue(batch = 50): Promise<boolean> {
    const due = await this.deps.deviceAuthorizations.due(new Date(), batch);
    for (const { _id } of due) {
      try {
        await this.#pollOne(_id);
      } catch (error) {
        this.deps.logger.warn({ err: error, connection_id: _id }, "device authorization poll failed; will retry");
      }
    }
    return due.length === batch;
  }

  async #pollOne(id: string): Promise<void> {
    const { deviceAuthorizations, lifecycle } = this.deps;
    const lease = await lifecycle.tryLease(id);
    if (lease === null) return;
    try {
      // Re-read under the lease: another instance may have polled (or finished) it meanwhile.
      const pending = await deviceAuthorizations.findById(id);
      const now = new Date();
      if (pending === null || pending.next_poll_time > now) return;
      const connection = await this.deps.connections.findByIdUnscoped(id);
      if (connection === null || connection.status !== "PENDING" || connection.kind !== "device_code") {
        await deviceAuthorizations.remove(id);
        return;
      }
      // RFC 8628 §3.2 `expires_in`: the device code's lifetime, not BROKER_STATE_TTL.
      if (pending.expire_time <= now) return await this.#end(connection, "expired_token");
      const credential = await this.deps.credentials.findById(connection.organisation_id, connection.credential_id);
      if (credential === null) return await this.#end(connection, "credential_deleted");
      const profile = profileFor(this.deps.providers, credential, connection.connection_config);
      const target = connectionTokenClient(connection, credential, profile, "token_url", this.#secretDeps);
      if (typeof target === "string") return await this.#end(connection, "endpoint_changed");
      // Written before the request: a crash or a lost answer never lets anyone poll sooner.
      let interval = pending.interval_seconds;
      await deviceAuthorizations.schedule(id, nextPollTime(now, interval, pending.expire_time), interval);
      let tokens: TokenSet;
      try {
        const deviceCode = this.deps.secretBox.decrypt(pending.device_code, connectionSecretContext(id, "device_code"));
        tokens = await pollDeviceToken(target.client, deviceCode, this.deps.fetch);
      } catch (error) {
        if (!(error instanceof ProviderCallError)) throw error;
        // No usable answer (unreachable, HTTP 5xx...): polled again at the next interval.
        if (error.oauthError === undefined) return;
        const code = error.oauthError;
        if (code === "slow_down") {
          // RFC 8628 §3.5: this and every later poll waits 5 seconds longer.
          interval += SLOW_DOWN_SECONDS;
          await deviceAuthorizations.schedule(id, nextPollTime(new Date(), interval, pending.expire_time), interval);
        }
        if (KEEP_POLLING.has(code)) return;
        // `access_denied`, `expired_token`, or any other error: "the client SHOULD stop polling".
        return await this.#end(connection, code);
      }
      await lifecycle.recordDeviceCodeApproved(connection, {
        organisationId: connection.organisation_id,
        connectorId: connection.connector_id,
        credentialId: connection.credential_id,
        tokens,
        requestedScopes: connection.scopes,
        account: undefined,
        endUserId: undefined,
        endpoints: { token_url: target.url, ...(connection.revocation_url === undefined ? {} : { revocation_url: connection.revocation_url }) },
        metadata: tokens.metadata,
        connectionConfig: connection.connection_config ?? {},
      });
      await deviceAuthorizations.remove(id);
    } finally {
      await lifecycle.release(lease);
    }
  }

  /** Deletes the connection with its reason, then the note (a crash in between: the next poll sees it deleted and drops the note). */
  async #end(connection: ConnectionDocument, reason: string): Promise<void> {
    await this.deps.lifecycle.recordDeviceCodeEnded(connection, reason);
    await this.deps.deviceAuthorizations.remove(connection._id);
  }

  /** RFC 8628 §4: the catalog's endpoint, else the one the issuer's discovery document names. */
  async #deviceAuthorizationEndpoint(profile: ProviderProfile): Promise<string> {
    if (profile.deviceAuthorizationUrl !== undefined) return profile.deviceAuthorizationUrl;
    if (profile.issuer !== undefined) {
      try {
        const server = await discoverAuthorizationServer(profile.issuer, this.deps.fetch);
        if (server.deviceAuthorizationEndpoint !== undefined) return server.deviceAuthorizationEndpoint;
      } catch (error) {
        if (!(error instanceof ProviderCallError)) throw error;
      }
    }
    throw new DomainError(
      "precondition_failed",
      "the credential's provider has no known device authorization endpoint (no catalog entry names one and its issuer's discovery document does not)",
    );
  }
}

/** The next poll after `interval` seconds, or at the expiry if sooner: the connection is deleted on time. */
function nextPollTime(now: Date, intervalSeconds: number, expireTime: Date): Date {
  return new Date(Math.min(now.getTime() + intervalSeconds * 1000, expireTime.getTime()));
}
