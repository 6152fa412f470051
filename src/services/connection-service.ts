import { hash, timingSafeEqual } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type ConnectionService, RevocationOutcome } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { connectionSecretContext, connectionTokenClient } from "../connections/secrets.js";
import { connectionLeaseKey, type TokenRefresher } from "../connections/token-refresher.js";
import { newEvent, toConnectionEvent } from "../events/connection-events.js";
import { OutboundError } from "../outbound/bounded-fetch.js";
import { RevocationError, revokeToken } from "../oauth/token-exchange.js";
import type { ConnectionDocument, ConnectionStore } from "../store/connections.js";
import type { EventStore } from "../store/events.js";
import type { Lease, LeaseStore } from "../store/leases.js";
import { fromConnectionStatus, toConnection, toConnectionStatus } from "./connection-views.js";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { invalid } from "../errors.js";
import { buildAuthorizeUrl, planAuthorizationRequest } from "../oauth/authorize-url.js";
import { redirectUriFor } from "../oauth/callback-params.js";
import { generateAttemptSecrets, hashState } from "../oauth/state.js";
import type { CredentialStore } from "../store/credentials.js";
import { requireAllowedReturnUrl } from "../oauth/return-url.js";
import type { OAuthStateDocument, OAuthStateStore } from "../store/oauth-states.js";
import type { OrganisationStore } from "../store/organisations.js";
import { callerKey, requireOrganisation } from "../auth/caller.js";
import { releaseWorkSlots } from "../interceptors/rate-limit.js";
import { streamSignal } from "../interceptors/stream-limits.js";
import type { EventFeed } from "../events/event-feed.js";
import { requireIdentifier, requireText } from "../validation.js";
import { type ProviderCatalog, profileFor } from "../providers/catalog.js";

export interface ConnectionServiceDeps {
  credentials: CredentialStore;
  states: OAuthStateStore;
  organisations: OrganisationStore;
  connections: ConnectionStore;
  events: EventStore;
  leases: LeaseStore;
  refresher: TokenRefresher;
  secretBox: SecretBox;
  /** The bounded fetch for provider calls (revocation). */
  fetch: typeof fetch;
  /** Called after a change that recorded an event, so the relay publishes it now. */
  onEvent: (connectionId: string) => void;
  /** Published events, for WatchConnectionEvents (one shared poll per organisation). */
  eventFeed: EventFeed;
  /** BROKER_PUBLIC_URL: redirect URIs are made from it (see redirectUriFor). */
  publicUrl: string;
  /** The operator console's own return URL, allowed for the flows the console starts. */
  consoleReturnUrl: string;
  stateTtlSeconds: number;
  allowHttpAuthorizeUrl: boolean;
  providers: ProviderCatalog;
}

/** The AAD that binds a stored PKCE verifier to its attempt. */
export function codeVerifierContext(stateHash: string): string {
  return `oauth_states/${stateHash}/code_verifier`;
}

export function connectionService(deps: ConnectionServiceDeps): ServiceImpl<typeof ConnectionService> {
  return {
    async initialiseOAuth2Connection(req, ctx) {
      // Every input is checked before anything is written. The authorization request is checked
      // after the credential is read, since its provider decides the rules (and the endpoint).
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      requireOrganisation(ctx, organisationId, "credential");
      const connectorId = requireIdentifier(req.connectorId, "connector_id");
      const reference = req.credential ?? invalid("credential", "is required");
      const credentialId = requireText(reference.id, "credential.id", 128);
      const credentialOrganisationId = requireIdentifier(reference.organisationId, "credential.organisation_id");
      const clientId = requireText(req.clientId, "client_id", 512);
      const endUserId = req.endUserId === "" ? undefined : requireText(req.endUserId, "end_user_id", 256);
      // The confirmation code reaches the caller's backend only through its return URL.
      if (endUserId !== undefined && req.returnUrl === "") invalid("return_url", 'is required with "end_user_id"');

      const authorizationInput = {
        scopes: req.scopes,
        disableOfflineAccess: req.disableOfflineAccess,
        prompt: req.prompt,
        additionalParams: req.additionalParams,
        allowHttp: deps.allowHttpAuthorizeUrl,
      };
      // Rule 1: a credential of another organisation is indistinguishable from a missing one.
      const [settings, credential] = await Promise.all([
        deps.organisations.findById(organisationId),
        credentialOrganisationId === organisationId ? deps.credentials.findById(organisationId, credentialId) : null,
      ]);
      if (credential === null) {
        // Bad input is still reported as such (by the generic rules, as before providers decided
        // them) rather than hidden behind NOT_FOUND.
        if (req.authorizeUrl !== "") planAuthorizationRequest({ ...authorizationInput, authorizeUrl: req.authorizeUrl });
        throw new ConnectError("credential not found", Code.NotFound);
      }
      // The provider's profile checks `connection_config` against the catalog's parameters.
      const profile = profileFor(deps.providers, credential, req.connectionConfig);
      const authorizeUrl = req.authorizeUrl !== "" ? req.authorizeUrl : (profile.authorizeUrl ?? invalid("authorize_url", "is required"));
      const plan = planAuthorizationRequest({ ...authorizationInput, authorizeUrl, rules: profile.authorize });
      const returnUrl =
        req.returnUrl === ""
          ? undefined
          : requireAllowedReturnUrl(req.returnUrl, [
              ...(settings?.allowed_return_urls ?? []),
              ...(ctx.values.get(callerKey)?.viaConsole ? [deps.consoleReturnUrl] : []),
            ]);
      // Rule 2: the callback checks this again, in case the credential changes in between.
      if (credential.client_id !== clientId) {
        throw new ConnectError('"client_id" does not match the credential\'s client ID', Code.FailedPrecondition);
      }
      // The ID token that `openid` brings back is verified against the issuer (OpenID Connect
      // Core §3.1.3.7), so an openid flow without one could never complete.
      if (plan.needsNonce && profile.issuer === undefined) {
        throw new ConnectError('"scopes" has "openid" but the credential has no "issuer" to verify ID tokens', Code.FailedPrecondition);
      }

      const secrets = generateAttemptSecrets({ pkce: profile.authorize.pkce, nonce: plan.needsNonce });
      const redirectUri = redirectUriFor(deps.publicUrl, settings?.per_organisation_callback === true ? organisationId : undefined);
      const url = buildAuthorizeUrl(plan, {
        clientId,
        redirectUri,
        state: secrets.state,
        codeChallenge: secrets.codeChallenge,
        nonce: secrets.nonce,
      });
      const now = new Date();
      const expireTime = new Date(now.getTime() + deps.stateTtlSeconds * 1000);
      const attempt: OAuthStateDocument = {
        _id: secrets.stateHash,
        organisation_id: organisationId,
        connector_id: connectorId,
        credential_id: credential._id,
        client_id: clientId,
        redirect_uri: redirectUri,
        scopes: plan.scopes,
        create_time: now,
        expire_time: expireTime,
      };
      if (secrets.codeVerifier !== undefined) {
        attempt.code_verifier = deps.secretBox.encrypt(secrets.codeVerifier, codeVerifierContext(secrets.stateHash));
      }
      if (secrets.nonce !== undefined) attempt.nonce = secrets.nonce;
      if (returnUrl !== undefined) attempt.return_url = returnUrl;
      if (endUserId !== undefined) attempt.end_user_id = endUserId;
      if (Object.keys(profile.connectionConfig).length > 0) attempt.connection_config = { ...profile.connectionConfig };
      await deps.states.insert(attempt);
      return { url, expireTime: timestampFromDate(expireTime) };
    },

    async getConnection(req, ctx) {
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      requireOrganisation(ctx, organisationId, "connection");
      const connection = await deps.connections.findById(organisationId, requireText(req.id, "id", 128));
      if (connection === null) throw connectionNotFound();
      return { connection: toConnection(connection) };
    },

    async listConnections(req, ctx) {
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      requireOrganisation(ctx, organisationId, "organisation");
      const size = pageSize(req.pageSize);
      const beforeId = req.pageToken === "" ? undefined : decodePageToken(req.pageToken);
      const filter = {
        connectorId: req.connectorId === "" ? undefined : requireIdentifier(req.connectorId, "connector_id"),
        credentialId: req.credentialId === "" ? undefined : requireText(req.credentialId, "credential_id", 128),
        status: fromConnectionStatus(req.status),
      };
      // One extra document tells whether another page exists.
      const page = await deps.connections.list(organisationId, filter, beforeId, size + 1);
      const shown = page.slice(0, size);
      const last = shown.at(-1);
      return {
        connections: shown.map(toConnection),
        nextPageToken: page.length > size && last !== undefined ? encodePageToken(last._id) : "",
      };
    },

    async getAccessToken(req, ctx) {
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      requireOrganisation(ctx, organisationId, "connection");
      const connectionId = requireText(req.connectionId, "connection_id", 128);
      // Waiting on another call's refresh is no work of this call's own: it gives its slots back.
      const token = await deps.refresher.getAccessToken(organisationId, connectionId, () => releaseWorkSlots(ctx.values));
      return {
        accessToken: token.accessToken,
        tokenType: token.tokenType,
        expireTime: token.expireTime ? timestampFromDate(token.expireTime) : undefined,
        metadata: token.metadata,
      };
    },

    async confirmConnection(req, ctx) {
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      requireOrganisation(ctx, organisationId, "connection");
      const id = requireText(req.connectionId, "connection_id", 128);
      const endUserId = requireText(req.endUserId, "end_user_id", 256);
      const confirmation = requireText(req.confirmation, "confirmation", 128);
      return withConnectionLease(deps, organisationId, id, async (connection) => {
        if (connection.status !== "PENDING" || connection.confirmation_hash === undefined) {
          throw new ConnectError("the connection is not waiting for confirmation", Code.FailedPrecondition);
        }
        const expired = connection.pending_expire_time !== undefined && connection.pending_expire_time <= new Date();
        if (expired || !matches(endUserId, connection.end_user_id) || !matches(hashState(confirmation), connection.confirmation_hash)) {
          const failures = (connection.failed_confirmations ?? 0) + 1;
          if (expired || failures >= MAX_FAILED_CONFIRMATIONS) await deps.connections.deletePending(id);
          else await deps.connections.update(id, { set: { failed_confirmations: failures } });
          throw new ConnectError("wrong end user or confirmation for this connection", Code.PermissionDenied);
        }
        await deps.connections.update(id, {
          set: { status: "ACTIVE" },
          unset: ["confirmation_hash", "pending_expire_time", "failed_confirmations"],
          event: newEvent("connection.created", "ACTIVE"),
        });
        deps.onEvent(id);
        const confirmed = await deps.connections.findById(organisationId, id);
        if (confirmed === null) throw connectionNotFound();
        return { connection: toConnection(confirmed) };
      });
    },

    async deleteConnection(req, ctx) {
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      requireOrganisation(ctx, organisationId, "connection");
      const id = requireText(req.id, "id", 128);
      return withConnectionLease(deps, organisationId, id, async (connection) => {
        const revocation = req.revoke ? await revoke(deps, connection) : { outcome: RevocationOutcome.UNSPECIFIED, error: "" };
        if (revocation.outcome === RevocationOutcome.FAILED && req.keepIfRevocationFails) {
          throw new ConnectError(`revocation failed (${revocation.error}) and the connection was kept`, Code.Unavailable);
        }
        // Tokens go now; the document follows once the relay has published its event.
        await deps.connections.update(id, {
          set: { status: "DELETED" },
          unset: ["access_token", "refresh_token", "id_token", "extra_fields", "status_reason"],
          event: newEvent("connection.deleted"),
        });
        deps.onEvent(id);
        return { revocation: revocation.outcome, revocationError: revocation.error };
      });
    },

    async listConnectionEvents(req, ctx) {
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      requireOrganisation(ctx, organisationId, "organisation");
      const connectionId = req.connectionId === "" ? undefined : requireText(req.connectionId, "connection_id", 128);
      const size = pageSize(req.pageSize);
      const beforeId = req.pageToken === "" ? undefined : decodePageToken(req.pageToken);
      // One extra document tells whether another page exists.
      const page = await deps.events.list(organisationId, connectionId, beforeId, size + 1);
      const shown = page.slice(0, size);
      const last = shown.at(-1);
      return {
        events: shown.map(toConnectionEvent),
        nextPageToken: page.length > size && last !== undefined ? encodePageToken(last._id) : "",
      };
    },

    async countConnections(req, ctx) {
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      requireOrganisation(ctx, organisationId, "organisation");
      const [counts, failing] = await Promise.all([
        deps.connections.countByStatus(organisationId),
        deps.connections.failingCredentialIds(organisationId, MAX_FAILING_COUNTED),
      ]);
      const byCredential: Record<string, bigint> = {};
      for (const credentialId of failing) byCredential[credentialId] = (byCredential[credentialId] ?? 0n) + 1n;
      return {
        counts: [...counts].map(([status, count]) => ({ status: toConnectionStatus(status), count: BigInt(count) })),
        failingConnectionsByCredential: byCredential,
      };
    },

    async *watchConnectionEvents(req, ctx) {
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      requireOrganisation(ctx, organisationId, "organisation");
      for await (const event of deps.eventFeed.follow(organisationId, streamSignal(ctx))) yield { event: toConnectionEvent(event) };
    },
  };
}

/** CountConnections reads at most this many failing connections to group them by credential. */
const MAX_FAILING_COUNTED = 10_000;

/** After this many wrong confirmations the pending connection is deleted. */
const MAX_FAILED_CONFIRMATIONS = 5;

/** Compares secrets by their hashes, in constant time. */
function matches(presented: string, expected: string | undefined): boolean {
  if (expected === undefined) return false;
  return timingSafeEqual(hash("sha256", presented, "buffer"), hash("sha256", expected, "buffer"));
}

function connectionNotFound(): ConnectError {
  return new ConnectError("connection not found", Code.NotFound);
}

/**
 * Runs `change` holding the connection's lease (every write to a connection after its creation
 * does), with the connection as read under the lease. NOT_FOUND when it is missing or another
 * organisation's, before and after waiting.
 */
async function withConnectionLease<T>(
  deps: ConnectionServiceDeps,
  organisationId: string,
  id: string,
  change: (connection: ConnectionDocument) => Promise<T>,
): Promise<T> {
  if ((await deps.connections.findById(organisationId, id)) === null) throw connectionNotFound();
  const lease = await acquireConnectionLease(deps, id);
  try {
    const connection = await deps.connections.findById(organisationId, id);
    if (connection === null) throw connectionNotFound();
    return await change(connection);
  } finally {
    await deps.leases.release(lease);
  }
}

/** Waits (bounded) for the connection's lease: a refresh may be holding it. */
async function acquireConnectionLease(deps: ConnectionServiceDeps, id: string): Promise<Lease> {
  const deadline = Date.now() + deps.refresher.leaseMs + 2_000;
  while (Date.now() < deadline) {
    const lease = await deps.leases.tryAcquire(connectionLeaseKey(id), deps.refresher.leaseMs);
    if (lease !== null) return lease;
    await sleep(100);
  }
  throw new ConnectError("the connection is busy - try again", Code.Unavailable);
}

/**
 * RFC 7009: revokes the refresh token when there is one (which ends the whole grant at most
 * providers, §2.1), else the access token.
 */
async function revoke(
  deps: ConnectionServiceDeps,
  connection: ConnectionDocument,
): Promise<{ outcome: RevocationOutcome; error: string }> {
  const credential = await deps.credentials.findById(connection.organisation_id, connection.credential_id);
  if (credential === null) return { outcome: RevocationOutcome.NOT_SUPPORTED, error: "" };
  // The same hosts as the connection was made with.
  const profile = profileFor(deps.providers, credential, connection.connection_config);
  if (profile.revocationUrl === undefined) return { outcome: RevocationOutcome.NOT_SUPPORTED, error: "" };
  const field = connection.refresh_token !== undefined ? "refresh_token" : "access_token";
  const sealed = connection[field];
  if (sealed === undefined) return { outcome: RevocationOutcome.NOT_SUPPORTED, error: "" };
  // The token goes only to the revocation endpoint in force when it was obtained, and the client
  // secret only with a credential still at that endpoint.
  const target = connectionTokenClient(connection, credential, profile, "revocation_url", deps.secretBox);
  if (target === "no_endpoint") return { outcome: RevocationOutcome.NOT_SUPPORTED, error: "" };
  if (target === "endpoint_changed") {
    return { outcome: RevocationOutcome.FAILED, error: "the credential's endpoints changed since the connection was made" };
  }
  try {
    await revokeToken(
      target.client,
      target.url,
      { value: deps.secretBox.decrypt(sealed, connectionSecretContext(connection._id, field)), hint: field },
      deps.fetch,
    );
    return { outcome: RevocationOutcome.REVOKED, error: "" };
  } catch (error) {
    if (error instanceof RevocationError || error instanceof OutboundError) {
      return { outcome: RevocationOutcome.FAILED, error: error.message };
    }
    throw error;
  }
}
