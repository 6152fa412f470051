import * as oauth from "oauth4webapi";
import { requestParts, type TokenClient } from "./token-exchange.js";
import { ProviderCallError } from "../network/provider-call-error.js";
import { parseTokenResponse, STANDARD_TOKEN_RESPONSE, type TokenSet } from "./token-response.js";

/** What the device authorization endpoint answers (RFC 8628 §3.2); the device code is a secret. */
export interface DeviceAuthorization {
  deviceCode: string;
  userCode: string;
  verificationUri: string;
  verificationUriComplete: string | undefined;
  expiresIn: number;
  interval: number;
}

/** RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default." */
export const DEFAULT_POLL_INTERVAL_SECONDS = 5;
/** RFC 8628 §3.5: on `slow_down` the interval "MUST be increased by 5 seconds for this and all subsequent requests". */
export const SLOW_DOWN_SECONDS = 5;
/** A device code lives at most this long here, whatever the provider says (a day). */
const MAX_EXPIRES_IN_SECONDS = 24 * 3600;
const MAX_INTERVAL_SECONDS = 3600;

/**
 * RFC 8628 §3.1: asks the device authorization endpoint for a device and user code, with the
 * token endpoint's client authentication. Throws ProviderCallError (`oauth_error` with the
 * provider's error code when it sent one).
 */
export async function requestDeviceAuthorization(
  client: TokenClient,
  endpoint: string,
  scope: string | undefined,
  fetchImpl: typeof fetch,
): Promise<DeviceAuthorization> {
  const { as, oauthClient, auth, options } = requestParts(client, fetchImpl);
  const parameters: Record<string, string> = scope === undefined ? {} : { scope };
  const response = await oauth.deviceAuthorizationRequest({ ...as, device_authorization_endpoint: endpoint }, oauthClient, auth, parameters, {
    ...options,
    [oauth.allowInsecureRequests]: new URL(endpoint).protocol === "http:",
  });
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw invalidResponse(`HTTP ${response.status} with a body that is not JSON`, response.status);
  }
  if (typeof body !== "object" || body === null) throw invalidResponse(`HTTP ${response.status} with a body that is not an object`, response.status);
  if (typeof body.error === "string") {
    const oauthError = /^[\x20-\x7e]{1,128}$/.test(body.error) ? body.error : "invalid_error";
    throw new ProviderCallError("oauth_error", `provider error (HTTP ${response.status})`, { oauthError, status: response.status });
  }
  if (response.status !== 200) throw new ProviderCallError("http_error", `HTTP ${response.status}`, { status: response.status });
  const text_ = (name: string, value: unknown): string => {
    if (typeof value !== "string" || value === "") throw invalidResponse(`the response has no "${name}"`, response.status);
    return value;
  };
  // Google names it `verification_url`, from a draft of the RFC.
  const verificationUri = text_("verification_uri", body.verification_uri ?? body.verification_url);
  const complete = body.verification_uri_complete;
  return {
    deviceCode: text_("device_code", body.device_code),
    userCode: text_("user_code", body.user_code),
    verificationUri,
    verificationUriComplete: typeof complete === "string" && complete !== "" ? complete : undefined,
    expiresIn: seconds(body.expires_in, "expires_in", MAX_EXPIRES_IN_SECONDS) ?? throwMissing("expires_in"),
    interval: seconds(body.interval, "interval", MAX_INTERVAL_SECONDS) ?? DEFAULT_POLL_INTERVAL_SECONDS,
  };
}

/**
 * RFC 8628 §3.4: one poll of the token endpoint with the device code. Resolves with the tokens
 * once the user approved; throws ProviderCallError whose `oauthError` is `authorization_pending`,
 * `slow_down`, `access_denied`, `expired_token` (§3.5) or another code (none: no usable answer).
 */
export async function pollDeviceToken(client: TokenClient, deviceCode: string, fetchImpl: typeof fetch): Promise<TokenSet> {
  const { as, oauthClient, auth, options } = requestParts(client, fetchImpl);
  const response = await oauth.deviceCodeGrantRequest(as, oauthClient, auth, deviceCode, options);
  return parseTokenResponse(response.status, response.headers.get("content-type"), await response.text(), client.response ?? STANDARD_TOKEN_RESPONSE);
}

/** A whole number of seconds, 1 to `max`; strings of digits accepted (some providers send them). */
function seconds(value: unknown, name: string, max: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  const number = typeof value === "string" && /^\d{1,9}$/.test(value) ? Number(value) : value;
  if (typeof number !== "number" || !Number.isInteger(number) || number < 1) throw invalidResponse(`"${name}" is not a positive whole number`, 200);
  return Math.min(number, max);
}

function throwMissing(name: string): never {
  throw invalidResponse(`the response has no "${name}"`, 200);
}

function invalidResponse(message: string, status: number): ProviderCallError {
  return new ProviderCallError("invalid_response", message, { status });
}
