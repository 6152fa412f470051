import { invalid } from "../errors.js";
import { optionalText, requireEndpointUrl } from "../validation.js";

/**
 * Parameters the broker itself sets on every authorization request (RFC 6749 §4.1.1, RFC 7636
 * §4.3, OpenID Connect Core §3.1.2.1). Callers may not set them, nor may the authorize URL.
 */
export const BROKER_PARAMS = [
  "response_type",
  "client_id",
  "redirect_uri",
  "state",
  "scope",
  "prompt",
  "code_challenge",
  "code_challenge_method",
  "nonce",
] as const;

/**
 * Parameters that would change how the response comes back. The callback only handles the plain
 * query response, so a JAR request object (RFC 9101) or another response mode cannot be allowed.
 */
export const UNSUPPORTED_PARAMS = ["response_mode", "request", "request_uri"] as const;

const RESERVED_PARAMS: ReadonlySet<string> = new Set([...BROKER_PARAMS, ...UNSUPPORTED_PARAMS]);

export const MAX_SCOPES = 100;
export const MAX_SCOPE_LENGTH = 256;
/**
 * The `scope` parameter as sent. Every attempt's scopes are stored until its state expires, and
 * 100 entries of 256 characters made 25 KB per state; with the other fields' limits (return_url
 * 2048, client_id 512, end_user_id 256) a state holds at most about 5 KB of caller input.
 */
export const MAX_SCOPES_TOTAL_LENGTH = 2048;
export const MAX_PROMPT_LENGTH = 256;
export const MAX_ADDITIONAL_PARAMS_LENGTH = 4096;

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
const PROMPT_TOKEN = /^[A-Za-z0-9_-]+$/;

/** What the provider profile says about authorization requests (see src/providers/profile.ts). */
export interface AuthorizationRules {
  scopeSeparator: string;
  offlineAccess: { method: "scope"; scope: string } | { method: "param"; params: Record<string, string> } | { method: "none" };
  defaultParams: ReadonlyArray<readonly [string, string]>;
  defaultPrompt: string | undefined;
  approvalPromptSuppressesDefault: boolean;
  promptValues: readonly string[] | undefined;
}

/** The seed's generic rules: `offline_access`, `prompt=login`, space-separated scopes. */
export const GENERIC_AUTHORIZATION_RULES: AuthorizationRules = {
  scopeSeparator: " ",
  offlineAccess: { method: "scope", scope: "offline_access" },
  defaultParams: [],
  defaultPrompt: "login",
  approvalPromptSuppressesDefault: true,
  promptValues: undefined,
};

export interface AuthorizationRequestInput {
  authorizeUrl: string;
  /** The provider's rules; the generic ones when omitted. */
  rules?: AuthorizationRules;
  scopes: readonly string[];
  disableOfflineAccess: boolean;
  /** `undefined` when the caller did not set the field: that selects the default. */
  prompt: string | undefined;
  additionalParams: string;
  /** Accept plain `http` authorize URLs for any host (`BROKER_ALLOW_HTTP_AUTHORIZE_URL`). */
  allowHttp: boolean;
}

/** A validated authorization request, before the per-attempt secrets are generated. */
export interface AuthorizationRequestPlan {
  endpoint: URL;
  scopes: string[];
  scopeSeparator: string;
  prompt: string | undefined;
  additionalParams: Array<[string, string]>;
  /** OpenID Connect Core §3.1.2.1: a nonce binds the ID token to this attempt. */
  needsNonce: boolean;
}

/** Per-attempt values generated once the request is known to be valid. */
export interface AuthorizationRequestSecrets {
  clientId: string;
  redirectUri: string;
  state: string;
  /** Omitted when the credential disables PKCE. */
  codeChallenge: string | undefined;
  /** Omitted unless the plan needs one. */
  nonce: string | undefined;
}

/** Validates every caller-supplied part of an authorization request. Throws InvalidInputError. */
export function planAuthorizationRequest(input: AuthorizationRequestInput): AuthorizationRequestPlan {
  const rules = input.rules ?? GENERIC_AUTHORIZATION_RULES;
  const endpoint = parseAuthorizeUrl(input.authorizeUrl, input.allowHttp);
  const callerParams = parseAdditionalParams(input.additionalParams, endpoint);
  const offline = input.disableOfflineAccess ? { method: "none" as const } : rules.offlineAccess;
  const scopes = normaliseScopes(input.scopes, offline.method === "scope" ? offline.scope : undefined, rules.scopeSeparator);
  const prompt = normalisePrompt(input.prompt, callerParams, rules);
  // The provider's defaults and its way of asking for offline access come after the caller's
  // parameters, and only for keys the caller (or the authorize URL) did not set: the caller wins.
  const additionalParams = [...callerParams];
  const taken = (key: string) => endpoint.searchParams.has(key) || additionalParams.some(([k]) => k === key);
  const providerParams = [...rules.defaultParams, ...(offline.method === "param" ? Object.entries(offline.params) : [])];
  for (const [key, value] of providerParams) if (!taken(key)) additionalParams.push([key, value]);
  return { endpoint, scopes, scopeSeparator: rules.scopeSeparator, prompt, additionalParams, needsNonce: scopes.includes("openid") };
}

/**
 * The URL to send the browser to: the authorize URL's own query first, then the broker's
 * parameters in a fixed order, then the caller's additional parameters.
 */
export function buildAuthorizeUrl(plan: AuthorizationRequestPlan, secrets: AuthorizationRequestSecrets): string {
  const url = new URL(plan.endpoint);
  const query = url.searchParams;
  query.append("response_type", "code");
  query.append("client_id", secrets.clientId);
  query.append("redirect_uri", secrets.redirectUri);
  query.append("state", secrets.state);
  if (plan.scopes.length > 0) query.append("scope", plan.scopes.join(plan.scopeSeparator));
  if (plan.prompt !== undefined) query.append("prompt", plan.prompt);
  if (secrets.codeChallenge !== undefined) {
    query.append("code_challenge", secrets.codeChallenge);
    query.append("code_challenge_method", "S256");
  }
  if (plan.needsNonce) {
    if (secrets.nonce === undefined) throw new Error("an openid request needs a nonce");
    query.append("nonce", secrets.nonce);
  }
  for (const [key, value] of plan.additionalParams) query.append(key, value);
  return url.href;
}

export function parseAuthorizeUrl(raw: string, allowHttp: boolean): URL {
  const url = requireEndpointUrl(raw, "authorize_url", { allowHttp });
  const seen = new Set<string>();
  for (const key of url.searchParams.keys()) {
    if (RESERVED_PARAMS.has(key)) invalid("authorize_url", `must not set "${key}"`);
    if (seen.has(key)) invalid("authorize_url", `must not repeat "${key}"`);
    seen.add(key);
  }
  return url;
}

/**
 * Rule 5: requested scopes in order, de-duplicated, plus the provider's offline-access scope
 * (`offline_access` by default) unless disabled.
 */
export function normaliseScopes(scopes: readonly string[], offlineScope: string | undefined, separator = " ", name = "scopes"): string[] {
  if (scopes.length > MAX_SCOPES) invalid(name, `must have at most ${MAX_SCOPES} entries`);
  const result = new Set<string>();
  scopes.forEach((scope, index) => {
    const field = `${name}[${index}]`;
    if (scope === "") invalid(field, "must not be empty");
    if (scope.length > MAX_SCOPE_LENGTH) invalid(field, `must be at most ${MAX_SCOPE_LENGTH} characters`);
    // RFC 6749 §3.3: scopes are space-delimited on the wire, so one entry cannot hold a space.
    if (!SCOPE_TOKEN.test(scope)) invalid(field, 'must be a scope token (printable ASCII without space or " or \\)');
    // A provider that joins scopes with another character (Slack's comma) would split this one.
    if (separator !== " " && scope.includes(separator)) invalid(field, "must not contain the provider's scope separator");
    result.add(scope);
  });
  if (offlineScope !== undefined) result.add(offlineScope);
  if ([...result].join(" ").length > MAX_SCOPES_TOTAL_LENGTH) invalid(name, `must total at most ${MAX_SCOPES_TOTAL_LENGTH} characters`);
  return [...result];
}

/**
 * Rule 6. OpenID Connect Core §3.1.2.1: `prompt` is a space-delimited list, and `none` must not
 * be combined with any other value.
 */
export function normalisePrompt(
  prompt: string | undefined,
  additionalParams: ReadonlyArray<readonly [string, string]>,
  rules: AuthorizationRules = GENERIC_AUTHORIZATION_RULES,
): string | undefined {
  const hasApprovalPrompt = additionalParams.some(([key]) => key === "approval_prompt");
  if (prompt === undefined) return hasApprovalPrompt && rules.approvalPromptSuppressesDefault ? undefined : rules.defaultPrompt;
  optionalText(prompt, "prompt", MAX_PROMPT_LENGTH);
  const values = [...new Set(prompt.split(/[ +]+/).filter((value) => value !== ""))];
  if (values.length === 0) return undefined;
  for (const value of values) {
    if (!PROMPT_TOKEN.test(value)) invalid("prompt", "values must be tokens of A-Z a-z 0-9 _ -");
  }
  if (values.includes("none") && values.length > 1) invalid("prompt", 'must not combine "none" with other values');
  // Google, for one, refuses `login`: only the values the provider documents are sent.
  const unknown = rules.promptValues === undefined ? undefined : values.find((value) => !rules.promptValues!.includes(value));
  if (unknown !== undefined) invalid("prompt", `"${unknown}" is not one of the provider's prompt values (${rules.promptValues!.join(" ")})`);
  // Google answers "Conflict params: approval_prompt and prompt" to a request that has both.
  if (hasApprovalPrompt) invalid("prompt", 'must not be set together with "approval_prompt" in "additional_params"');
  return values.join(" ");
}

/**
 * Rule 7: `application/x-www-form-urlencoded` (WHATWG URL §5.1), parsed strictly. URLSearchParams
 * silently keeps malformed percent-escapes, which would smuggle different bytes to the provider
 * than the caller reviewed, so escapes are checked first.
 */
export function parseAdditionalParams(raw: string, endpoint: URL): Array<[string, string]> {
  if (raw.length > MAX_ADDITIONAL_PARAMS_LENGTH) {
    invalid("additional_params", `must be at most ${MAX_ADDITIONAL_PARAMS_LENGTH} characters`);
  }
  if (raw === "") return [];
  // Raw CR, LF or NUL have no place in a query string, encoded or not.
  if (/[\u0000-\u001f\u007f]/.test(raw)) invalid("additional_params", "must not contain control characters");
  if (raw.includes("\ufffd")) invalid("additional_params", "must be valid UTF-8");
  const params: Array<[string, string]> = [];
  const seen = new Set<string>();
  for (const pair of raw.split("&")) {
    const equals = pair.indexOf("=");
    const key = decodeFormComponent(equals === -1 ? pair : pair.slice(0, equals));
    const value = decodeFormComponent(equals === -1 ? "" : pair.slice(equals + 1));
    if (key === "") invalid("additional_params", "must not contain an empty key");
    if (/[\u0000-\u001f\u007f]/.test(key)) invalid("additional_params", "keys must not contain control characters");
    if (RESERVED_PARAMS.has(key)) invalid("additional_params", `must not set "${key}"`);
    if (endpoint.searchParams.has(key)) invalid("additional_params", `must not repeat "${key}" from "authorize_url"`);
    if (seen.has(key)) invalid("additional_params", `must not repeat "${key}"`);
    seen.add(key);
    params.push([key, value]);
  }
  return params;
}

function decodeFormComponent(text: string): string {
  if (/%(?![0-9A-Fa-f]{2})/.test(text)) invalid("additional_params", "has a malformed percent-encoding");
  try {
    return decodeURIComponent(text.replaceAll("+", " "));
  } catch {
    invalid("additional_params", "has a percent-encoding that is not UTF-8");
  }
}
