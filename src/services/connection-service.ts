
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type ConnectionService,
  type CreateConnectionRequest,
  type CreateConnectionResponseSchema,
  RevocationOutcome,
} from "../../gen/oauth2broker/v1/connection_service_pb.js";
import type { ConnectionLifecycle, RevocationResult } from "../connections/connection-lifecycle.js";
import { connectionNotFound } from "../connections/connection-errors.js";
import type { TokenRefresher } from "../connections/token-refresher.js";
import { toConnectionEvent, toConnectionStatus } from "../events/connection-events.js";
import type { ConnectionDocument, ConnectionStore } from "../store/connections.js";
import type { EventStore } from "../store/events.js";
import { fromConnectionStatus, toConnection, toProviderApi } from "./connection-views.js";
import { decodePageToken, pageOf, pageSize } from "./page-token.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { DomainError, invalid, notFound } from "../errors.js";
import { buildAuthorizeUrl, normaliseScopes, planAuthorizationRequest } from "../oauth/authorize-url.js";
import { redirectUriFor } from "../oauth/callback-params.js";
import { generateAttemptSecrets } from "../oauth/state.js";
import type { CredentialStore } from "../store/credentials.js";
import { requireAllowedReturnUrl } from "../oauth/return-url.js";
import type { OAuthStateDocument, OAuthStateStore } from "../store/oauth-states.js";
import type { OrganisationStore } from "../store/organisations.js";
import { callerKey, requireOrganisation } from "../auth/caller.js";
import { releaseWorkSlots } from "../interceptors/rate-limit.js";
import { streamSignal } from "../interceptors/stream-limits.js";
import type { EventFeed } from "../events/event-feed.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import { accountSourceOf, profileFor } from "../providers/profile.js";
import { codeVerifierContext } from "../crypto/secret-contexts.js";
import { catalogGrants } from "../providers/profile.js";
import {
  apiKeySecretOf,
  basicSecretOf,
  clientCredentialsRequestOf,
  credentialReferenceOf,
  importedTokensOf,
  jwtBearerRequestOf,
  replacementSecretOf,
  staticProviderOf,
} from "./connection-kinds.js";
import type { CredentialDocument } from "../store/credentials.js";

export interface ConnectionServiceDeps {
  credentials: CredentialStore;
  states: OAuthStateStore;
  organisations: OrganisationStore;
  connections: ConnectionStore;
  events: EventStore;
  /** Every connection write (confirm, delete) goes through it. */
  lifecycle: ConnectionLifecycle;
  refresher: TokenRefresher;
  secretBox: SecretBox;
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

export function connectionService(deps: ConnectionServiceDeps): ServiceImpl<typeof ConnectionService> {
  return {
    async initialiseOAuth2Connection(req, ctx) {
      // Every input is checked before anything is written: the fields by the request rules (the
      // proto), the authorization request after the credential is read, since its provider
      // decides the rules (and the endpoint).
      const { organisationId, connectorId, clientId } = req;
      requireOrganisation(ctx, organisationId, "credential");
      const { id: credentialId, organisationId: credentialOrganisationId } = req.credential ?? invalid("credential", "is required");
      const endUserId = req.endUserId === "" ? undefined : req.endUserId;
      // The confirmation code reaches the caller's backend only through its return URL.
      if (endUserId !== undefined && req.returnUrl === "") invalid("return_url", 'is required with "end_user_id"');
      const reconnectId = req.connectionId === "" ? undefined : req.connectionId;

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
        throw notFound("credential");
      }
      let reconnecting: ConnectionDocument | null = null;
      if (reconnectId !== undefined) {
        // A reconnect re-authorizes a connection of this organisation and credential, in any
        // status but deleted; another organisation's is indistinguishable from a missing one.
        reconnecting = await deps.connections.findById(organisationId, reconnectId);
        if (reconnecting === null) throw connectionNotFound();
        if (reconnecting.credential_id !== credential._id) {
          throw new DomainError("precondition_failed", '"connection_id" names a connection made with another credential');
        }
        // A PENDING connection is bound to its end user until ConfirmConnection: a reconnect
        // applied at once would make it ACTIVE without that confirmation.
        if (reconnecting.status === "PENDING" && endUserId === undefined) {
          throw new DomainError("precondition_failed", '"end_user_id" is required to reconnect a connection waiting for ConfirmConnection');
        }
      }
      // The provider's profile checks `connection_config` against the catalog's parameters. A
      // reconnect keeps the connection's own unless the request gives one.
      const connectionConfig =
        Object.keys(req.connectionConfig).length === 0 && reconnecting !== null ? (reconnecting.connection_config ?? {}) : req.connectionConfig;
      const profile = profileFor(deps.providers, credential, connectionConfig);
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
        throw new DomainError("precondition_failed", '"client_id" does not match the credential\'s client ID');
      }
      // The ID token that `openid` brings back is verified against the issuer (OpenID Connect
      // Core §3.1.3.7), so an openid flow without one could never complete.
      if (plan.needsNonce && profile.issuer === undefined) {
        throw new DomainError("precondition_failed", '"scopes" has "openid" but the credential has no "issuer" to verify ID tokens');
      }
      // A connection with a recorded account takes only a grant proven to be that account's: a
      // flow that could never say who signed in could never complete.
      if (reconnecting?.external_account !== undefined && accountSourceOf(profile, plan.needsNonce) === undefined) {
        throw new DomainError(
          "precondition_failed",
          '"connection_id" names a connection with a recorded provider account, but this request cannot learn who signs in: ' +
            'ask for "openid" (the credential needs an "issuer") or set the credential\'s "userinfo_url"',
        );
      }

      const now = new Date();
      // The state names the window of `now`, the attempt's create_time: the store files it there.
      const secrets = generateAttemptSecrets({ pkce: profile.authorize.pkce, nonce: plan.needsNonce }, now);
      const redirectUri = redirectUriFor(deps.publicUrl, settings?.per_organisation_callback === true ? organisationId : undefined);
      const url = buildAuthorizeUrl(plan, {
        clientId,
        redirectUri,
        state: secrets.state,
        codeChallenge: secrets.codeChallenge,
        nonce: secrets.nonce,
      });
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
      if (reconnectId !== undefined) attempt.connection_id = reconnectId;
      if (Object.keys(profile.connectionConfig).length > 0) attempt.connection_config = { ...profile.connectionConfig };
      await deps.states.insert(attempt);
      return { url, expireTime: timestampFromDate(expireTime) };
    },

    async getConnection(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "connection");
      const connection = await deps.connections.findById(req.organisationId, req.id);
      if (connection === null) throw connectionNotFound();
      return { connection: toConnection(connection) };
    },

    async listConnections(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      const size = pageSize(req.pageSize);
      const beforeId = req.pageToken === "" ? undefined : decodePageToken(req.pageToken);
      const filter = {
        connectorId: req.connectorId === "" ? undefined : req.connectorId,
        credentialId: req.credentialId === "" ? undefined : req.credentialId,
        status: fromConnectionStatus(req.status),
      };
      const { shown, nextPageToken } = pageOf(await deps.connections.list(organisationId, filter, beforeId, size + 1), size);
      return { connections: shown.map(toConnection), nextPageToken };
    },

    async getAccessToken(req, ctx) {
      const { organisationId, connectionId } = req;
      requireOrganisation(ctx, organisationId, "connection");
      const token = await deps.refresher.getAccessToken(organisationId, connectionId, {
        force: req.forceRefresh,
        // Waiting on another call's refresh is no work of this call's own: it gives its slots back.
        onSharedWait: () => releaseWorkSlots(ctx.values),
      });
      return {
        accessToken: token.accessToken,
        tokenType: token.tokenType,
        expireTime: token.expireTime ? timestampFromDate(token.expireTime) : undefined,
        metadata: token.metadata,
        apiBaseUrl: token.api?.base_urls[0]?.url ?? "",
        api: toProviderApi(token.api),
      };
    },

    createConnection: (req, ctx) => createConnection(deps, req, ctx),

    async replaceStaticConnection(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "connection");
      const secret = replacementSecretOf(req);
      return { connection: toConnection(await deps.lifecycle.replaceStatic(req.organisationId, req.id, secret)) };
    },

    async confirmConnection(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "connection");
      return { connection: toConnection(await deps.lifecycle.confirm(req.organisationId, req.connectionId, req.endUserId, req.confirmation)) };
    },

    async deleteConnection(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "connection");
      const result = await deps.lifecycle.delete(req.organisationId, req.id, { revoke: req.revoke, keepIfRevocationFails: req.keepIfRevocationFails });
      return { revocation: REVOCATION_OUTCOMES[result.outcome], revocationError: result.outcome === "failed" ? result.error : "" };
    },

    async listConnectionEvents(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      const connectionId = req.connectionId === "" ? undefined : req.connectionId;
      const size = pageSize(req.pageSize);
      const beforeId = req.pageToken === "" ? undefined : decodePageToken(req.pageToken);
      const { shown, nextPageToken } = pageOf(await deps.events.list(organisationId, connectionId, beforeId, size + 1), size);
      return { events: shown.map(toConnectionEvent), nextPageToken };
    },

    async countConnections(req, ctx) {
      const { organisationId } = req;
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
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      for await (const event of deps.eventFeed.follow(organisationId, streamSignal(ctx))) yield { event: toConnectionEvent(event) };
    },
  };
}

/**
 * CreateConnection: checks the request for its kind before anything is read, then hands the
 * connection to the lifecycle, which obtains its first token (client credentials, JWT bearer), claims its
 * `import_id` (imports) or seals its secret (static kinds).
 */
async function createConnection(
  deps: ConnectionServiceDeps,
  req: CreateConnectionRequest,
  ctx: HandlerContext,
): Promise<MessageInitShape<typeof CreateConnectionResponseSchema>> {
    // organisation_id and connector_id were checked by the request rules (the contract's).
    const { organisationId, connectorId } = req;
    requireOrganisation(ctx, organisationId, "credential");
    const { lifecycle } = deps;
    switch (req.kind.case) {
      case "clientCredentials": {
        const input = req.kind.value;
        const reference = credentialReferenceOf(input.credential, "client_credentials.credential");
        const grantRequest = clientCredentialsRequestOf(input);
        const credential = await credentialOf(deps, organisationId, reference);
        // The provider's profile checks `connection_config` and knows its scope separator.
        const profile = profileFor(deps.providers, credential, input.connectionConfig);
        normaliseScopesFor(grantRequest.scopes, profile.authorize.scopeSeparator);
        const grants = catalogGrants(deps.providers, credential, "client_credentials");
        if (!grants.supported) throw new DomainError("precondition_failed", "the credential's provider does not support the client credentials grant");
        if (grantRequest.audience !== undefined && grants.audiences !== undefined && !grants.audiences.includes(grantRequest.audience)) {
          invalid("client_credentials.audience", "is not one of the provider's audiences (see GetProvider)");
        }
        const connection = await lifecycle.createWithClientCredentials({
          organisationId,
          connectorId,
          credential,
          grantRequest,
          connectionConfig: input.connectionConfig,
        });
        return { connection: toConnection(connection), created: true };
      }
      case "jwtBearer": {
        const input = req.kind.value;
        const reference = credentialReferenceOf(input.credential, "jwt_bearer.credential");
        const credential = await credentialOf(deps, organisationId, reference);
        const profile = profileFor(deps.providers, credential, input.connectionConfig);
        const grantRequest = jwtBearerRequestOf(input, profile.jwtBearer, profile.authorize.scopeSeparator);
        if (!catalogGrants(deps.providers, credential, "jwt_bearer").supported) {
          throw new DomainError("precondition_failed", "the credential's provider does not support the JWT bearer grant");
        }
        const connection = await lifecycle.createWithJwtBearer({ organisationId, connectorId, credential, grantRequest, connectionConfig: input.connectionConfig });
        return { connection: toConnection(connection), created: true };
      }
      case "imported": {
        const input = req.kind.value;
        const reference = credentialReferenceOf(input.credential, "imported.credential");
        const tokens = importedTokensOf(input);
        const credential = await credentialOf(deps, organisationId, reference);
        profileFor(deps.providers, credential, input.connectionConfig);
        const { connection, created } = await lifecycle.importConnection({
          organisationId,
          connectorId,
          credential,
          ...tokens,
          connectionConfig: input.connectionConfig,
        });
        return { connection: toConnection(connection), created };
      }
      case "apiKey": {
        const secret = apiKeySecretOf(req.kind.value, "api_key.api_key");
        const provider = staticProviderOf(req.kind.value.provider, "api_key.provider", deps.providers);
        return { connection: toConnection(await lifecycle.createStatic({ organisationId, connectorId, provider, secret })), created: true };
      }
      case "basic": {
        const secret = basicSecretOf(req.kind.value, "basic.");
        const provider = staticProviderOf(req.kind.value.provider, "basic.provider", deps.providers);
        return { connection: toConnection(await lifecycle.createStatic({ organisationId, connectorId, provider, secret })), created: true };
      }
      default:
        return invalid("kind", "is required (client_credentials or jwt_bearer or imported or api_key or basic)");
    }
}

/** Rule 1 (as InitialiseOAuth2Connection): another organisation's credential reads as a missing one. */
async function credentialOf(deps: ConnectionServiceDeps, organisationId: string, reference: { id: string; organisationId: string }): Promise<CredentialDocument> {
  const credential = reference.organisationId === organisationId ? await deps.credentials.findById(organisationId, reference.id) : null;
  if (credential === null) throw notFound("credential");
  return credential;
}

/** The scopes once more, now that the provider's separator is known (Slack's comma). */
function normaliseScopesFor(scopes: string[], separator: string): void {
  normaliseScopes(scopes, undefined, separator, "client_credentials.scopes");
}

const REVOCATION_OUTCOMES: Record<RevocationResult["outcome"], RevocationOutcome> = {
  not_requested: RevocationOutcome.UNSPECIFIED,
  revoked: RevocationOutcome.REVOKED,
  failed: RevocationOutcome.FAILED,
  not_supported: RevocationOutcome.NOT_SUPPORTED,
};

/** CountConnections reads at most this many failing connections to group them by credential. */
const MAX_FAILING_COUNTED = 10_000;
