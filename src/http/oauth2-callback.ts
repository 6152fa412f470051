import type { JWTPayload } from "jose";
import type { Logger } from "pino";
import type { RateLimiter } from "../interceptors/rate-limit.js";
import { callbackOutcomeLabel, countTokenRequest, type Metrics } from "../observability/metrics.js";
import { type Tracing, traceFields } from "../observability/tracing.js";
import { isDatabaseUnavailable } from "../store/database.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { idTokenInvalid, type IdTokenVerifier } from "../oauth/id-token.js";
import { checkCallbackValues, isRedirectUriOf, issuerMatches, parseCallbackPath, parseCallbackQuery, providerErrorCode } from "../oauth/callback-params.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import { profileFor } from "../providers/profile.js";
import { ProviderCallError, type ProviderCallErrorCode } from "../network/provider-call-error.js";
import { returnUrlWith } from "../oauth/return-url.js";
import { hashState, stateWindowOf } from "../oauth/state.js";
import { exchangeAuthorizationCode } from "../oauth/token-exchange.js";
import { ConnectionError } from "../connections/connection-errors.js";
import type { ConnectionLifecycle, Grant } from "../connections/connection-lifecycle.js";
import { credentialApi, endpointsOf, tokenClientFor } from "../connections/secrets.js";
import { accountFromIdToken, accountFromObject, type ExternalAccount, fetchUserinfoAccount, OIDC_ACCOUNT_FIELDS } from "../oauth/external-account.js";
import type { TokenSet } from "../oauth/token-response.js";
import { accountSourceOf, type ProviderProfile } from "../providers/profile.js";
import { renderApi } from "../providers/api.js";
import { fetchMetadata } from "../oauth/metadata-requests.js";
import type { OutboundPolicy } from "../network/address-policy.js";
import type { CredentialStore } from "../store/credentials.js";
import type { OAuthStateDocument, OAuthStateStore } from "../store/oauth-states.js";
import { clientAddress, clientLimitKey, type TrustedProxies } from "../network/client-address.js";
import { sendPage, sendRedirect } from "./pages.js";
import type { HttpRequest, HttpResponse, HttpRoute } from "./http-types.js";
import { codeVerifierContext } from "../crypto/secret-contexts.js";

export interface CallbackDeps {
  states: OAuthStateStore;
  credentials: CredentialStore;
  /** Stores the connection, or replaces a reconnected one's grant. */
  lifecycle: ConnectionLifecycle;
  secretBox: SecretBox;
  idTokens: IdTokenVerifier;
  /** Limits callback requests per client address. */
  limiter: RateLimiter;
  /** Whose forwarding headers name the client. */
  trustedProxies: TrustedProxies;
  metrics: Metrics;
  tracing: Tracing;
  /** The bounded fetch for provider calls. */
  fetch: typeof fetch;
  providers: ProviderCatalog;
  /** Checks provider-sent URLs used as API bases. */
  outbound: OutboundPolicy;
  logger: Logger;
}

/** Why an attempt ended without a connection: the `error` the return URL receives. */
type FailureReason =
  | "invalid_request"
  | "credential_changed"
  | "issuer_mismatch"
  | "token_exchange_failed"
  | "invalid_id_token"
  | "account_mismatch"
  | "account_unverified"
  | "connection_not_found"
  | "invalid_callback_signature"
  | "invalid_callback_value"
  | "server_error";

const EXPIRED_TITLE = "This sign-in link has expired or was already used";
const MAX_URL_LENGTH = 8 * 1024;

/** The shared callback and every organisation's own (`/oauth2/callback/<organisation_id>`). */
export function callbackRoute(handle: HttpRoute["handle"]): HttpRoute {
  return { matches: (path) => parseCallbackPath(path) !== undefined, handle };
}

/**
 * GET /oauth2/callback (or an organisation's own callback): where the provider sends the browser
 * back (RFC 6749 §4.1.2). Consumes the attempt, checks the response, exchanges the code and stores
 * the connection, then sends the browser to the caller's return URL or shows a page. Nothing the provider sent is trusted until
 * checked, and nothing is stored unless every check passed.
 */
export function oauth2Callback(deps: CallbackDeps): (req: HttpRequest, res: HttpResponse) => Promise<void> {
  return async (req, res) => {
    const span = deps.tracing.startServerSpan("GET /oauth2/callback", {
      get: (name) => {
        const value = req.headers[name];
        return Array.isArray(value) ? value[0] : value;
      },
    });
    try {
      await handleCallback(deps, req, res, deps.logger.child({ route: "oauth2_callback", ...traceFields(span) }));
    } finally {
      span.end();
    }
  };
}

/**
 * The callback's failure for each way a provider call fails: an ID token that cannot be verified
 * (or whose issuer's keys cannot be found) means starting again; any other failure of the token
 * exchange, trying again later.
 */
const PROVIDER_CALL_FAILURES: Record<ProviderCallErrorCode, "token_exchange_failed" | "invalid_id_token"> = {
  unreachable: "token_exchange_failed",
  redirected: "token_exchange_failed",
  response_too_large: "token_exchange_failed",
  http_error: "token_exchange_failed",
  invalid_response: "token_exchange_failed",
  oauth_error: "token_exchange_failed",
  revocation_failed: "token_exchange_failed",
  id_token_invalid: "invalid_id_token",
  discovery_failed: "invalid_id_token",
};

const FAILURE_PAGES: Record<"token_exchange_failed" | "invalid_id_token", [number, string[]]> = {
  token_exchange_failed: [502, ["The provider did not complete the connection. Please try again later."]],
  invalid_id_token: [400, ["The provider's answer could not be verified. Please start again."]],
};

async function handleCallback(deps: CallbackDeps, req: HttpRequest, res: HttpResponse, log: Logger): Promise<void> {
  const count = (outcome: string) => deps.metrics.callbacks.inc({ outcome: callbackOutcomeLabel(outcome) });
  const admitted = await admitCallback(deps, req, res, log, count);
  if (admitted === undefined) return;
  const { attempt, params, query } = admitted;
  const attemptLog = log.child({
    organisation_id: attempt.organisation_id,
    connector_id: attempt.connector_id,
    credential_id: attempt.credential_id,
  });
  const fail = (reason: FailureReason | string, status: number, lines: string[], cause?: unknown): void => {
    count(reason);
    attemptLog.warn({ outcome: reason, err: cause }, "connection failed");
    if (attempt.return_url !== undefined) sendRedirect(res, returnUrlWith(attempt.return_url, { error: reason }));
    else sendPage(res, status, "The account was not connected", lines);
  };

  try {
    if (params.error !== undefined) {
      // RFC 6749 §4.1.2.1. `error_uri` is never followed or linked: it is the provider's to say.
      const description = params.errorDescription ?? params.error;
      return fail(providerErrorCode(params.error), 400, [`The provider said: ${description}`, "You can close this window and try again."]);
    }
    if (params.code === undefined) return fail("invalid_request", 400, ["The provider sent no authorization code."]);

    const credential = await deps.credentials.findById(attempt.organisation_id, attempt.credential_id);
    // The documented rule: the client ID the URL was made for must still be the credential's. And
    // the code and the verifier (stored with the endpoints then in force) go to no endpoint set
    // since: a credential changed during the sign-in ends it (security issue 11, item 1).
    if (credential === null || credential.client_id !== attempt.client_id || credential.update_time > attempt.create_time) {
      return fail("credential_changed", 400, ["The application's settings changed while you were signing in. Please start again."]);
    }
    // The same template values as the authorization request, so the code goes to the same host.
    const profile = profileFor(deps.providers, credential, attempt.connection_config);
    if (!issuerMatches(params.iss, { ...credential, issuer: profile.issuer })) {
      return fail("issuer_mismatch", 400, ["The response did not come from the expected provider. Please start again."]);
    }
    // Values the catalog keeps from the query, checked before the code leaves the broker.
    const { callback: names, callbackPatterns: patterns, callbackEquals: equals, callbackSignature: signature } = profile.metadata;
    const clientSecret = () => tokenClientFor(credential, profile, deps).clientSecret;
    const callbackValues = checkCallbackValues(query, { names, patterns, equals, signature }, clientSecret);
    if ("refused" in callbackValues) {
      attemptLog.warn({ parameter: callbackValues.key }, "callback value refused");
      const what = callbackValues.refused === "invalid_callback_signature" ? "was not signed by the provider" : "is not what the provider sends";
      return fail(callbackValues.refused, 400, [`The response's "${callbackValues.key}" ${what}. Nothing was stored. Please start again.`]);
    }

    const tokens = await countTokenRequest(deps.metrics, "exchange", exchangeAuthorizationCode(
      tokenClientFor(credential, profile, deps),
      {
        code: params.code,
        redirectUri: attempt.redirect_uri,
        codeVerifier: decryptVerifier(deps.secretBox, attempt, params.state),
      },
      deps.fetch,
    ));
    let claims: JWTPayload | undefined;
    if (attempt.nonce !== undefined) {
      // OpenID Connect Core §3.1.3.3: the answer to an openid request must carry an ID token, and
      // an unverifiable one is no better than none.
      if (tokens.idToken === undefined) throw idTokenInvalid("no ID token in the token response to an openid request");
      if (profile.issuer === undefined) throw idTokenInvalid("the credential no longer has an issuer to verify the ID token");
      claims = await deps.idTokens.verify(tokens.idToken, { issuer: profile.issuer, clientId: credential.client_id, nonce: attempt.nonce });
    }

    // Documented requests right after the exchange (Mailchimp's data center, Xero's tenant), through
    // the same bounded fetch and outbound policy as every provider call.
    const requested = await fetchMetadata(profile.metadataRequests, tokens.accessToken, deps.fetch);
    if (requested.failed.length > 0) attemptLog.warn({ outcome: "metadata_request_failed", failed: requested.failed }, "a metadata request failed; its values are left out");
    const metadata = { ...callbackValues.metadata, ...tokens.metadata, ...requested.metadata, ...profile.connectionConfig };
    const grant: Grant = {
      organisationId: attempt.organisation_id,
      connectorId: attempt.connector_id,
      credentialId: attempt.credential_id,
      tokens,
      requestedScopes: attempt.scopes,
      account: await externalAccount(deps, profile, tokens, claims, attemptLog),
      // Bound to an end user: usable only once the caller's backend confirms who finished the flow.
      endUserId: attempt.end_user_id,
      // Where these tokens came from: the only endpoints they will be sent to.
      endpoints: endpointsOf(profile),
      // What the catalog names from the callback and the response, plus the template values.
      metadata,
      connectionConfig: { ...profile.connectionConfig },
      api: credentialApi(credential, profile.providerId) ?? renderApi(profile.api, profile.templateValues, metadata, (url) => deps.outbound.refusal(url), profile.providerId),
    };
    const reconnect = attempt.connection_id;
    const { id, confirmation } =
      reconnect === undefined
        ? await deps.lifecycle.create(grant)
        : { id: reconnect, ...(await deps.lifecycle.reauthorize(reconnect, grant)) };

    const outcome = confirmation === undefined ? (reconnect === undefined ? "connected" : "reauthorized") : "pending_confirmation";
    count(outcome);
    attemptLog.info({ outcome, connection_id: id }, reconnect === undefined ? "connection created" : "connection reauthorized");
    if (attempt.return_url !== undefined) {
      const result: Record<string, string> = { connection_id: id };
      if (confirmation !== undefined) result.confirmation = confirmation;
      return sendRedirect(res, returnUrlWith(attempt.return_url, result));
    }
    sendPage(res, 200, "Account connected", ["Your account is connected. You can close this window."]);
  } catch (error) {
    if (error instanceof ProviderCallError) {
      const reason = PROVIDER_CALL_FAILURES[error.code];
      return fail(reason, ...FAILURE_PAGES[reason], error);
    }
    if (error instanceof ConnectionError && error.code === "account_mismatch") {
      return fail("account_mismatch", 409, [
        "You signed in with a different account than the one this connection belongs to. Nothing was changed.",
        "Start again and sign in with the same account.",
      ]);
    }
    if (error instanceof ConnectionError && error.code === "account_unverified") {
      return fail("account_unverified", 409, [
        "The provider did not say which account you signed in with, so it could not be checked against this connection's. Nothing was changed.",
        "Please try again later.",
      ]);
    }
    if (error instanceof ConnectionError && error.code === "not_found") {
      return fail("connection_not_found", 404, ["The connection to reconnect no longer exists. Nothing was changed."]);
    }
    fail("server_error", isDatabaseUnavailable(error) ? 503 : 500, ["Something went wrong on our side. Please try again later."], error);
  }
}

function decryptVerifier(secretBox: SecretBox, attempt: OAuthStateDocument, state: string): string | undefined {
  if (attempt.code_verifier === undefined) return undefined;
  return secretBox.decrypt(attempt.code_verifier, codeVerifierContext(hashState(state)));
}

/**
 * Who connected, where the provider says (see `accountSourceOf`): the catalog's `identity` (a
 * token response field, the verified ID token's claims, or the userinfo endpoint), else the
 * verified ID token's standard claims (OpenID Connect Core §2, §5.1), else the credential's
 * userinfo endpoint (§5.3). Undefined when unknown: a userinfo call that fails leaves a new
 * connection without an account, and a reconnect of one with an account is then refused.
 */
async function externalAccount(
  deps: CallbackDeps,
  profile: ProviderProfile,
  tokens: TokenSet,
  claims: JWTPayload | undefined,
  log: Logger,
): Promise<ExternalAccount | undefined> {
  const fields = profile.identity === undefined ? OIDC_ACCOUNT_FIELDS : { ...OIDC_ACCOUNT_FIELDS, ...profile.identity };
  const source = accountSourceOf(profile, claims !== undefined);
  if (source === "token_response") return accountFromObject(tokens.extra, fields);
  if (source === "id_token") return accountFromObject(claims!, fields) ?? accountFromIdToken(claims!);
  if (source === undefined) return undefined;
  try {
    return await fetchUserinfoAccount(profile.userinfoUrl!, tokens.accessToken, fields, deps.fetch);
  } catch (error) {
    if (!(error instanceof ProviderCallError)) throw error;
    log.warn({ outcome: "userinfo_failed", err: error }, "the provider's userinfo endpoint did not say who connected");
    return undefined;
  }
}

/**
 * The checks before a callback's attempt is used: the method, the per-address limit, the state
 * (consumed here, atomically), and the callback path. Answers the browser itself and returns
 * undefined when one fails.
 */
async function admitCallback(
  deps: CallbackDeps,
  req: HttpRequest,
  res: HttpResponse,
  log: Logger,
  count: (outcome: string) => void,
): Promise<{ attempt: OAuthStateDocument; params: NonNullable<ReturnType<typeof parseCallbackQuery>>; query: string } | undefined> {
  if (req.method !== "GET") {
    res.setHeader("Allow", "GET");
    sendPage(res, 405, "Method not allowed", ["This address only takes the provider's redirect."]);
    return undefined;
  }
  const rawUrl = req.url ?? "";
  const query = rawUrl.slice(rawUrl.indexOf("?") + 1 || rawUrl.length);
  const params = rawUrl.length > MAX_URL_LENGTH ? undefined : parseCallbackQuery(query);
  // The callback needs no credentials (the state is its proof), so it is limited per client
  // address. A request whose state is pending passes anyway: forged requests from others sharing
  // the address (everyone, behind a proxy that is not trusted) must not lock real users out.
  const client = clientLimitKey(clientAddress(req.socket?.remoteAddress, req.headers, deps.trustedProxies));
  const retryAfter = deps.limiter.take(client);
  if (retryAfter > 0 && (params === undefined || !(await deps.states.isPending(hashState(params.state), stateWindowOf(params.state))))) {
    count("rate_limited");
    res.setHeader("Retry-After", String(retryAfter));
    sendPage(res, 429, "Too many requests", ["Please wait a moment and try again."]);
    return undefined;
  }
  if (rawUrl.length > MAX_URL_LENGTH) {
    sendPage(res, 414, "Address too long", ["This sign-in link is not valid."]);
    return undefined;
  }
  if (params === undefined) {
    count("invalid_state");
    log.info({ outcome: "invalid_state" }, "callback refused");
    sendPage(res, 400, EXPIRED_TITLE, ["Go back to the application and start connecting again."]);
    return undefined;
  }

  // Consumed first, atomically, whatever follows: one response per attempt (RFC 9700 §2.1.1).
  const attempt = await deps.states.consumeByHash(hashState(params.state), stateWindowOf(params.state));
  if (attempt === null) {
    count("invalid_state");
    log.info({ outcome: "invalid_state" }, "callback refused");
    sendPage(res, 400, EXPIRED_TITLE, ["Go back to the application and start connecting again."]);
    return undefined;
  }
  // Security issue 11, item 2: a code completes only the flow whose redirect URI it arrived at
  // (RFC 6749 §4.1.3 sends that URI again at the exchange). A code for an organisation's own
  // callback that arrives elsewhere, or the reverse, was sent to an address the flow never named.
  const callback = parseCallbackPath(rawUrl.split("?", 1)[0] ?? "");
  if (callback === undefined || !isRedirectUriOf(callback, attempt.redirect_uri)) {
    count("wrong_callback");
    log.warn({ outcome: "wrong_callback", organisation_id: attempt.organisation_id }, "callback refused: the flow uses another callback path");
    sendPage(res, 400, EXPIRED_TITLE, ["Go back to the application and start connecting again."]);
    return undefined;
  }
  return { attempt, params, query };
}
