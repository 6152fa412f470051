import * as oauth from "oauth4webapi";
import { ProviderCallError } from "../network/provider-call-error.js";

/** What a credential takes from its issuer's metadata. */
export interface DiscoveredServer {
  tokenEndpoint: string;
  revocationEndpoint: string | undefined;
  userinfoEndpoint: string | undefined;
  /** RFC 9207 §3: the server always sends `iss` on authorization responses. */
  issParameterSupported: boolean;
  /** RFC 8414 §2 `code_challenge_methods_supported`; undefined when the server does not say. */
  codeChallengeMethods: string[] | undefined;
  /** RFC 8628 §4 `device_authorization_endpoint`; undefined when the server does not say. */
  deviceAuthorizationEndpoint: string | undefined;
}

/**
 * Reads the issuer's metadata: OpenID Connect Discovery 1.0 first, then RFC 8414's
 * `/.well-known/oauth-authorization-server`. oauth4webapi checks that the document's `issuer`
 * equals the one asked for (RFC 8414 §3.3), which stops one server from describing another.
 * `fetchImpl` is the broker's bounded fetch, so the outbound address policy applies. Throws a
 * ProviderCallError coded `discovery_failed`.
 */
export async function discoverAuthorizationServer(issuer: string, fetchImpl: typeof fetch): Promise<DiscoveredServer> {
  const url = new URL(issuer);
  const options = { [oauth.customFetch]: fetchImpl, [oauth.allowInsecureRequests]: url.protocol === "http:" };
  let metadata: oauth.AuthorizationServer | undefined;
  let failure: unknown;
  for (const algorithm of ["oidc", "oauth2"] as const) {
    try {
      metadata = await oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, { ...options, algorithm }));
      break;
    } catch (error) {
      failure = error;
    }
  }
  if (metadata === undefined) throw new ProviderCallError("discovery_failed", "no usable discovery document", { cause: failure });
  if (typeof metadata.token_endpoint !== "string") throw new ProviderCallError("discovery_failed", "the discovery document has no token_endpoint");
  const methods = metadata.code_challenge_methods_supported;
  return {
    tokenEndpoint: metadata.token_endpoint,
    revocationEndpoint: typeof metadata.revocation_endpoint === "string" ? metadata.revocation_endpoint : undefined,
    userinfoEndpoint: typeof metadata.userinfo_endpoint === "string" ? metadata.userinfo_endpoint : undefined,
    issParameterSupported: metadata.authorization_response_iss_parameter_supported === true,
    codeChallengeMethods: Array.isArray(methods) ? methods.filter((m): m is string => typeof m === "string") : undefined,
    deviceAuthorizationEndpoint: typeof metadata.device_authorization_endpoint === "string" ? metadata.device_authorization_endpoint : undefined,
  };
}
