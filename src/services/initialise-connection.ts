import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import type {
  InitialiseOAuth2ConnectionRequest,
  InitialiseOAuth2ConnectionResponseSchema,
} from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { callerKey, requireOrganisation } from "../auth/caller.js";
import { connectionNotFound } from "../connections/connection-errors.js";
import { codeVerifierContext } from "../crypto/secret-contexts.js";
import { DomainError, invalid, notFound } from "../errors.js";
import { buildAuthorizeUrl, planAuthorizationRequest } from "../oauth/authorize-url.js";
import { redirectUriFor } from "../oauth/callback-params.js";
import { requireAllowedReturnUrl } from "../oauth/return-url.js";
import { generateAttemptSecrets } from "../oauth/state.js";
import { accountSourceOf, profileFor } from "../providers/profile.js";
import type { ConnectionDocument } from "../store/connections.js";
import type { OAuthStateDocument } from "../store/oauth-states.js";
import type { SecretBox } from "../crypto/secret-box.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import type { ConnectionStore } from "../store/connections.js";
import type { CredentialStore } from "../store/credentials.js";
import type { OAuthStateStore } from "../store/oauth-states.js";
import type { OrganisationStore } from "../store/organisations.js";

export interface InitialiseDeps {
  credentials: CredentialStore;
  states: OAuthStateStore;
  organisations: OrganisationStore;
  connections: ConnectionStore;
  secretBox: SecretBox;
  /** BROKER_PUBLIC_URL: redirect URIs are made from it (see redirectUriFor). */
  publicUrl: string;
  /** The operator console's own return URL, allowed for the flows the console starts. */
  consoleReturnUrl: string;
  stateTtlSeconds: number;
  allowHttpAuthorizeUrl: boolean;
  providers: ProviderCatalog;
}

/**
 * InitialiseOAuth2Connection: checks the request against the credential's provider, stores the
 * attempt (its single-use state, PKCE verifier and nonce) and returns the provider URL.
 */
export async function initialiseOAuth2Connection(
  deps: InitialiseDeps,
  req: InitialiseOAuth2ConnectionRequest,
  ctx: HandlerContext,
): Promise<MessageInitShape<typeof InitialiseOAuth2ConnectionResponseSchema>> {
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
}
