import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { invalid } from "../errors.js";
import { buildAuthorizeUrl, planAuthorizationRequest } from "../oauth/authorize-url.js";
import { generateAttemptSecrets } from "../oauth/state.js";
import type { CredentialStore } from "../store/credentials.js";
import { requireAllowedReturnUrl } from "../oauth/return-url.js";
import type { OAuthStateDocument, OAuthStateStore } from "../store/oauth-states.js";
import type { OrganisationStore } from "../store/organisations.js";
import { requireIdentifier, requireText } from "../validation.js";

export interface ConnectionServiceDeps {
  credentials: CredentialStore;
  states: OAuthStateStore;
  organisations: OrganisationStore;
  secretBox: SecretBox;
  /** `<BROKER_PUBLIC_URL>/oauth2/callback` */
  redirectUri: string;
  stateTtlSeconds: number;
  allowHttpAuthorizeUrl: boolean;
}

/** The AAD that binds a stored PKCE verifier to its attempt. */
export function codeVerifierContext(stateHash: string): string {
  return `oauth_states/${stateHash}/code_verifier`;
}

export function connectionService(deps: ConnectionServiceDeps): ServiceImpl<typeof ConnectionService> {
  return {
    async initialiseOAuth2Connection(req) {
      // Every input is checked before anything is read or written.
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      const connectorId = requireIdentifier(req.connectorId, "connector_id");
      const reference = req.credential ?? invalid("credential", "is required");
      const credentialId = requireText(reference.id, "credential.id", 128);
      const credentialOrganisationId = requireIdentifier(reference.organisationId, "credential.organisation_id");
      const clientId = requireText(req.clientId, "client_id", 512);
      const plan = planAuthorizationRequest({
        authorizeUrl: req.authorizeUrl,
        scopes: req.scopes,
        disableOfflineAccess: req.disableOfflineAccess,
        prompt: req.prompt,
        additionalParams: req.additionalParams,
        allowHttp: deps.allowHttpAuthorizeUrl,
      });
      const returnUrl =
        req.returnUrl === ""
          ? undefined
          : requireAllowedReturnUrl(req.returnUrl, (await deps.organisations.findById(organisationId))?.allowed_return_urls ?? []);

      // Rule 1: a credential of another organisation is indistinguishable from a missing one.
      const credential =
        credentialOrganisationId === organisationId ? await deps.credentials.findById(organisationId, credentialId) : null;
      if (credential === null) throw new ConnectError("credential not found", Code.NotFound);
      // Rule 2: the callback checks this again, in case the credential changes in between.
      if (credential.client_id !== clientId) {
        throw new ConnectError('"client_id" does not match the credential\'s client ID', Code.FailedPrecondition);
      }
      // The ID token that `openid` brings back is verified against the issuer (OpenID Connect
      // Core §3.1.3.7), so an openid flow without one could never complete.
      if (plan.needsNonce && credential.issuer === undefined) {
        throw new ConnectError('"scopes" has "openid" but the credential has no "issuer" to verify ID tokens', Code.FailedPrecondition);
      }

      const secrets = await generateAttemptSecrets({ pkce: !credential.disable_pkce, nonce: plan.needsNonce });
      const url = buildAuthorizeUrl(plan, {
        clientId,
        redirectUri: deps.redirectUri,
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
        redirect_uri: deps.redirectUri,
        scopes: plan.scopes,
        create_time: now,
        expire_time: expireTime,
      };
      if (secrets.codeVerifier !== undefined) {
        attempt.code_verifier = deps.secretBox.encrypt(secrets.codeVerifier, codeVerifierContext(secrets.stateHash));
      }
      if (secrets.nonce !== undefined) attempt.nonce = secrets.nonce;
      if (returnUrl !== undefined) attempt.return_url = returnUrl;
      await deps.states.insert(attempt);
      return { url, expireTime: timestampFromDate(expireTime) };
    },
  };
}
