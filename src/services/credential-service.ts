import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { v7 as uuidv7 } from "uuid";
import { type ApiTokenPlacement, ApiTokenLocation } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { ClientSecretSlot, type Credential, CredentialSchema, TokenEndpointAuthMethod } from "../../gen/oauth2broker/v1/credential_pb.js";
import type { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { DomainError, invalid } from "../errors.js";
import {
  type CredentialChanges,
  type CredentialDocument,
  type CredentialStore,
  SECRET_DESTINATION_FIELDS,
} from "../store/credentials.js";
import type { TokenEndpointAuthMethodName } from "../oauth/client-authentication.js";
import type { ConnectionLifecycle } from "../connections/connection-lifecycle.js";
import { decodePageToken, pageOf, pageSize } from "./page-token.js";
import { callerKey, requireOrganisation } from "../auth/caller.js";
import type { OutboundPolicy } from "../network/address-policy.js";
import { requireEndpointUrl, requirePresent, requireText } from "../validation.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import { checkTemplateValues, renderEndpoint } from "../providers/profile.js";
import { type DiscoveredServer, discoverAuthorizationServer } from "../oauth/discovery.js";
import { ProviderCallError } from "../network/provider-call-error.js";
import { clientSecretContext } from "../crypto/secret-contexts.js";
import {
  clientAssertionOfCredential,
  credentialNotFound,
  credentialSecretMethods,
  sealKey,
  toCredentialKey,
  validateClientSecret,
} from "./credential-secrets.js";
import { generateSigningKey } from "../crypto/signing-keys.js";

export interface CredentialServiceDeps {
  credentials: CredentialStore;
  secretBox: SecretBox;
  outbound: OutboundPolicy;
  /** For `move_connections`: moves the credential's connections, each under its lease. */
  move: Pick<ConnectionLifecycle, "moveToCredentialEndpoints">;
  providers: ProviderCatalog;
  /** The bounded fetch for provider calls (issuer discovery). */
  fetch: typeof fetch;
  /** BROKER_PUBLIC_URL: where credentials' JWKS are served. */
  publicUrl: string;
}

export function credentialService({ credentials, secretBox, outbound, move, providers, fetch, publicUrl }: CredentialServiceDeps): ServiceImpl<typeof CredentialService> {
  const view = (document: CredentialDocument) => toCredential(document, publicUrl);
  const clientAssertionOf = (document: CredentialDocument) => clientAssertionOfCredential(providers, document);
  const checks = credentialChecks({ outbound, providers, fetch });
  const { validateTokenUrl, validateRevocationUrl, validateUserinfoUrl, validateApiBaseUrl, validateProvider, validateIssuer } = checks;
  return {
    async createCredential(req, ctx) {
      const organisationId = req.credential?.organisationId ?? "";
      requireOrganisation(ctx, organisationId, "organisation");
      const input = req.credential ?? invalid("credential", "is required");
      const document = await newCredential(organisationId, input, { checks, secretBox, clientAssertionOf });
      await credentials.insert(document);
      return { credential: view(document) };
    },

    async getCredential(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "credential");
      const document = await credentials.findById(req.organisationId, req.id);
      return { credential: view(document ?? credentialNotFound()) };
    },

    async listCredentials(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      const size = pageSize(req.pageSize);
      const afterId = req.pageToken === "" ? undefined : decodePageToken(req.pageToken);
      const { shown, nextPageToken } = pageOf(await credentials.listByOrganisation(organisationId, afterId, size + 1), size);
      return { credentials: shown.map(view), nextPageToken };
    },

    async updateCredential(req, ctx) {
      const organisationId = req.credential?.organisationId ?? "";
      requireOrganisation(ctx, organisationId, "credential");
      const input = req.credential ?? invalid("credential", "is required");
      // `id` is ignored on create, so only an update requires it.
      const id = requireText(input.id, "credential.id", 128);
      if (req.moveConnections && ctx.values.get(callerKey)?.kind !== "admin") {
        throw new DomainError("admin_only", '"move_connections" needs an admin key');
      }
      const paths = req.updateMask?.paths ?? [];
      if (paths.length === 0 && !req.moveConnections) invalid("update_mask", "must name at least one field");
      // Security issue 11, item 1: an endpoint changes only with a new client secret, so the
      // stored secret is never sent where it was not meant to go.
      const destination = SECRET_DESTINATION_FIELDS.find((field) => paths.includes(field));
      if (destination !== undefined && !paths.includes("client_secret")) {
        invalid("credential.client_secret", `is required to change "credential.${destination}"`);
      }
      const changes: CredentialChanges = {};
      const clear: Array<keyof CredentialChanges> = [];
      for (const path of new Set(paths)) {
        switch (path) {
          case "name":
            changes.name = validateName(input.name);
            break;
          case "client_id":
            changes.client_id = validateClientId(input.clientId);
            break;
          case "client_secret":
            changes.client_secret = secretBox.encrypt(validateClientSecret(input.clientSecret), clientSecretContext(id));
            break;
          case "token_url":
            if (input.tokenUrl === "") clear.push("token_url");
            else changes.token_url = validateTokenUrl(input.tokenUrl);
            break;
          case "token_endpoint_auth_method":
            if (input.tokenEndpointAuthMethod === undefined) clear.push("token_endpoint_auth_method");
            else changes.token_endpoint_auth_method = authMethodName(input.tokenEndpointAuthMethod);
            break;
          case "disable_pkce":
            if (input.disablePkce === undefined) clear.push("disable_pkce");
            else changes.disable_pkce = input.disablePkce;
            break;
          case "provider":
            if (input.provider === "") clear.push("provider");
            else changes.provider = input.provider;
            break;
          case "provider_config":
            if (Object.keys(input.providerConfig).length === 0) clear.push("provider_config");
            else changes.provider_config = { ...input.providerConfig };
            break;
          case "userinfo_url":
            if (input.userinfoUrl === undefined || input.userinfoUrl === "") clear.push("userinfo_url");
            else changes.userinfo_url = validateUserinfoUrl(input.userinfoUrl);
            break;
          case "authorization_response_iss_parameter_supported":
            changes.authorization_response_iss_parameter_supported = input.authorizationResponseIssParameterSupported;
            break;
          case "revocation_url":
            if (input.revocationUrl === undefined || input.revocationUrl === "") clear.push("revocation_url");
            else changes.revocation_url = validateRevocationUrl(input.revocationUrl);
            break;
          case "issuer":
            if (input.issuer === undefined || input.issuer === "") clear.push("issuer");
            else changes.issuer = validateIssuer(input.issuer);
            break;
          case "api_base_url":
          case "api_token_placement":
            apiChange(path, input, { changes, clear }, validateApiBaseUrl);
            break;
          default:
            invalid("update_mask", `names "${path.slice(0, 64)}" that cannot be updated`);
        }
      }
      // The credential as it would be after the change must still make sense as a whole (a
      // provider with its template values, or a token endpoint of its own).
      const current = (await credentials.findById(organisationId, id)) ?? credentialNotFound();
      let document = current;
      if (paths.length > 0) {
        const merged: CredentialDocument = { ...current, ...changes };
        for (const field of clear) delete merged[field];
        // A generic credential keeps storing its defaults, as before providers existed.
        if (merged.provider === undefined) {
          if (clear.includes("token_endpoint_auth_method")) changes.token_endpoint_auth_method = merged.token_endpoint_auth_method = "client_secret_basic";
          if (clear.includes("disable_pkce")) changes.disable_pkce = merged.disable_pkce = false;
        }
        validateProvider(merged);
        if (clientAssertionOf(merged) !== undefined && (merged.keys ?? []).length === 0) {
          invalid("credential.token_endpoint_auth_method", "needs a signing key first (AddCredentialKey)");
        }
        document = (await credentials.update(organisationId, id, changes, clear.filter((field) => changes[field] === undefined))) ?? credentialNotFound();
      }
      if (req.moveConnections) await move.moveToCredentialEndpoints(document);
      return { credential: view(document) };
    },

    ...credentialSecretMethods({ credentials, secretBox, view, clientAssertionOf }),

    async deleteCredential(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "credential");
      const deleted = await credentials.delete(req.organisationId, req.id);
      if (!deleted) credentialNotFound();
      return {};
    },
  };
}


// Required on create and when an update names them; their lengths and characters are the
// request rules' (credential.proto).
function validateName(name: string): string {
  return requirePresent(name, "credential.name");
}

function validateClientId(clientId: string): string {
  return requirePresent(clientId, "credential.client_id");
}

/** A URL the broker will call: a valid endpoint that the outbound policy allows. */
export function outboundUrl(outbound: OutboundPolicy, value: string, field: string): string {
  const url = requireEndpointUrl(value, field, { allowHttp: true });
  outbound.requireUrl(value, field, url);
  return url.href;
}

/** The request rules allow only the enum's values (`defined_only`); UNSPECIFIED is the default. */
const WIRE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const SCHEME = /^[A-Za-z0-9_-]{0,32}$/;

/** How the proxy sends the token to the credential's own API base: a header (with a scheme) or a query parameter. */
function validateApiTokenPlacement(placement: ApiTokenPlacement): NonNullable<CredentialDocument["api_token_placement"]> {
  if (placement.location !== ApiTokenLocation.HEADER && placement.location !== ApiTokenLocation.QUERY) {
    invalid("credential.api_token_placement.location", "must be API_TOKEN_LOCATION_HEADER or API_TOKEN_LOCATION_QUERY");
  }
  if (!WIRE_NAME.test(placement.name)) invalid("credential.api_token_placement.name", "must be 1 to 64 characters of A-Z a-z 0-9 _ -");
  const inQuery = placement.location === ApiTokenLocation.QUERY;
  if (inQuery && placement.scheme !== "") invalid("credential.api_token_placement.scheme", "must be empty for a query parameter");
  if (!SCHEME.test(placement.scheme)) invalid("credential.api_token_placement.scheme", "must be at most 32 characters of A-Z a-z 0-9 _ -");
  return { in: inQuery ? "query" : "header", name: placement.name, scheme: placement.scheme };
}

/** UpdateCredential's change of the credential's own API base or its token placement. */
function apiChange(
  path: "api_base_url" | "api_token_placement",
  input: Credential,
  update: { changes: CredentialChanges; clear: Array<keyof CredentialChanges> },
  validateApiBaseUrl: (url: string) => string,
): void {
  if (path === "api_base_url") {
    if (input.apiBaseUrl === undefined || input.apiBaseUrl === "") update.clear.push("api_base_url");
    else update.changes.api_base_url = validateApiBaseUrl(input.apiBaseUrl);
  } else if (input.apiTokenPlacement === undefined) update.clear.push("api_token_placement");
  else update.changes.api_token_placement = validateApiTokenPlacement(input.apiTokenPlacement);
}

/** A token placement says how to call the credential's own API base, so it needs one. */
function requireApiBaseForPlacement(document: Pick<CredentialDocument, "api_base_url" | "api_token_placement">): void {
  if (document.api_token_placement !== undefined && document.api_base_url === undefined) {
    invalid("credential.api_token_placement", 'needs "credential.api_base_url"');
  }
}

function authMethodName(method: TokenEndpointAuthMethod): TokenEndpointAuthMethodName {
  switch (method) {
    case TokenEndpointAuthMethod.CLIENT_SECRET_POST:
      return "client_secret_post";
    case TokenEndpointAuthMethod.PRIVATE_KEY_JWT:
      return "private_key_jwt";
    default:
      return "client_secret_basic";
  }
}

const AUTH_METHODS = {
  client_secret_basic: TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
  client_secret_post: TokenEndpointAuthMethod.CLIENT_SECRET_POST,
  private_key_jwt: TokenEndpointAuthMethod.PRIVATE_KEY_JWT,
} as const;

/** The API view of a stored credential: never a secret or private key, only whether one is set. */
export function toCredential(document: CredentialDocument, publicUrl: string): Credential {
  return create(CredentialSchema, {
    id: document._id,
    organisationId: document.organisation_id,
    name: document.name,
    clientId: document.client_id,
    clientSecretSet: document.client_secret !== "",
    tokenUrl: document.token_url ?? "",
    tokenEndpointAuthMethod: document.token_endpoint_auth_method === undefined ? undefined : AUTH_METHODS[document.token_endpoint_auth_method],
    disablePkce: document.disable_pkce,
    issuer: document.issuer,
    revocationUrl: document.revocation_url,
    userinfoUrl: document.userinfo_url,
    apiBaseUrl: document.api_base_url,
    apiTokenPlacement:
      document.api_token_placement === undefined
        ? undefined
        : {
            location: document.api_token_placement.in === "query" ? ApiTokenLocation.QUERY : ApiTokenLocation.HEADER,
            name: document.api_token_placement.name,
            scheme: document.api_token_placement.scheme,
          },
    provider: document.provider ?? "",
    providerConfig: document.provider_config ?? {},
    authorizationResponseIssParameterSupported: document.authorization_response_iss_parameter_supported === true,
    createTime: timestampFromDate(document.create_time),
    updateTime: timestampFromDate(document.update_time),
    previousClientSecretSet: document.previous_client_secret !== undefined,
    clientSecretLastUsed:
      document.client_secret_last_used === undefined
        ? ClientSecretSlot.UNSPECIFIED
        : document.client_secret_last_used === "current"
          ? ClientSecretSlot.CURRENT
          : ClientSecretSlot.PREVIOUS,
    clientSecretFallbackTime: document.client_secret_fallback_time === undefined ? undefined : timestampFromDate(document.client_secret_fallback_time),
    keys: (document.keys ?? []).map(toCredentialKey),
    jwksUri: (document.keys ?? []).length === 0 ? "" : jwksUrl(publicUrl, document._id),
  });
}

/** Where a credential's public keys are served (see `jwksRoute`). */
export function jwksUrl(publicUrl: string, credentialId: string): string {
  return `${publicUrl.replace(/\/+$/, "")}/credentials/${encodeURIComponent(credentialId)}/jwks.json`;
}

/**
 * The checks a credential's fields pass on create and update: endpoints the outbound policy
 * allows, a known provider with valid template values, an issuer, and what discovery fills in.
 */
function credentialChecks({ outbound, providers, fetch }: Pick<CredentialServiceDeps, "outbound" | "providers" | "fetch">) {
  const validateTokenUrl = (url: string) => outboundUrl(outbound, url, "credential.token_url");
  const validateRevocationUrl = (url: string) => outboundUrl(outbound, url, "credential.revocation_url");
  const validateUserinfoUrl = (url: string) => outboundUrl(outbound, url, "credential.userinfo_url");
  const validateApiBaseUrl = (url: string) => {
    const checked = outboundUrl(outbound, url, "credential.api_base_url");
    if (/[?#]/.test(url)) invalid("credential.api_base_url", "must not have a query or fragment");
    return checked.replace(/\/$/, "");
  };
  /**
   * A credential as a whole: a known provider with every credential-level template value valid
   * (and the hosts they name allowed by the outbound policy), or, without a provider, its own
   * token endpoint.
   */
  const validateProvider = (document: CredentialDocument): void => {
    requireApiBaseForPlacement(document);
    if (document.provider === undefined) {
      if (document.provider_config !== undefined && Object.keys(document.provider_config).length > 0) {
        invalid("credential.provider_config", 'is only for credentials with a "provider"');
      }
      if (document.token_url === undefined) invalid("credential.token_url", "is required");
      return;
    }
    const entry = providers.get(document.provider) ?? invalid("credential.provider", "is not a provider in the catalog");
    const values = checkTemplateValues(entry, "credential", document.provider_config ?? {}, "credential.provider_config");
    // Connection-level labels sit under the catalog's fixed domain; a sample fills them here.
    for (const parameter of entry.parameters ?? []) if (parameter.level === "connection") values[parameter.name] = "a";
    for (const template of Object.values(entry.endpoints)) {
      const credentialParameter = (entry.parameters ?? []).find((p) => p.level === "credential" && template.includes(`{${p.name}}`));
      if (credentialParameter === undefined) continue;
      const field = `credential.provider_config.${credentialParameter.name}`;
      const url = renderEndpoint(template, values, entry.parameters ?? []);
      const parsed = requireEndpointUrl(url, field, { allowHttp: true });
      outbound.requireUrl(url, field, parsed);
      outbound.requireHostName(parsed.hostname, field);
    }
  };
  /** RFC 8414 §2: an issuer is an https URL with no query or fragment. Discovery fetches it. */
  const validateIssuer = (issuer: string) => {
    outbound.requireUrl(issuer, "credential.issuer", requireEndpointUrl(issuer, "credential.issuer", { allowQuery: false, allowHttp: true }));
    // The issuer is compared as a string (RFC 9207 §2.4), so keep it exactly as given.
    return issuer;
  };
  const fillFromDiscovery = async (document: CredentialDocument, pkceSet: boolean, issSet: boolean): Promise<void> => {
    let server: DiscoveredServer;
    try {
      server = await discoverAuthorizationServer(document.issuer!, fetch);
    } catch (error) {
      if (!(error instanceof ProviderCallError && error.code === "discovery_failed")) throw error;
      invalid("credential.issuer", "has no usable discovery document (set token_url instead)");
    }
    // Discovered endpoints pass the same checks as given ones.
    document.token_url = outboundUrl(outbound, server.tokenEndpoint, "credential.token_url");
    if (document.revocation_url === undefined && server.revocationEndpoint !== undefined) {
      document.revocation_url = outboundUrl(outbound, server.revocationEndpoint, "credential.revocation_url");
    }
    if (document.userinfo_url === undefined && server.userinfoEndpoint !== undefined) {
      document.userinfo_url = outboundUrl(outbound, server.userinfoEndpoint, "credential.userinfo_url");
    }
    if (!issSet) document.authorization_response_iss_parameter_supported = server.issParameterSupported;
    // RFC 7636 §4.2: the broker sends S256 only; a server that lists methods without it gets none.
    if (!pkceSet && server.codeChallengeMethods !== undefined) document.disable_pkce = !server.codeChallengeMethods.includes("S256");
  };
  return { validateTokenUrl, validateRevocationUrl, validateUserinfoUrl, validateApiBaseUrl, validateProvider, validateIssuer, fillFromDiscovery };
}

/** A new credential's document from CreateCredential's input, every field checked, secrets sealed. */
async function newCredential(
  organisationId: string,
  input: Credential,
  deps: { checks: ReturnType<typeof credentialChecks>; secretBox: SecretBox; clientAssertionOf: (document: CredentialDocument) => unknown },
): Promise<CredentialDocument> {
  const { validateTokenUrl, validateRevocationUrl, validateUserinfoUrl, validateApiBaseUrl, validateProvider, validateIssuer, fillFromDiscovery } = deps.checks;
  const { secretBox } = deps;
  const id = uuidv7();
  const now = new Date();
  const document: CredentialDocument = {
    _id: id,
    organisation_id: organisationId,
    name: validateName(input.name),
    client_id: validateClientId(input.clientId),
    client_secret: "",
    authorization_response_iss_parameter_supported: input.authorizationResponseIssParameterSupported,
    create_time: now,
    update_time: now,
  };
  if (input.provider !== "") document.provider = input.provider;
  if (Object.keys(input.providerConfig).length > 0) document.provider_config = { ...input.providerConfig };
  if (input.tokenUrl !== "") document.token_url = validateTokenUrl(input.tokenUrl);
  // Without a provider, unset means the generic behaviour, stored as such (as before providers
  // existed); with one, unset means "as the catalog says", so nothing is stored.
  if (input.tokenEndpointAuthMethod !== undefined || document.provider === undefined) {
    document.token_endpoint_auth_method = authMethodName(input.tokenEndpointAuthMethod ?? TokenEndpointAuthMethod.UNSPECIFIED);
  }
  if (input.disablePkce !== undefined || document.provider === undefined) document.disable_pkce = input.disablePkce ?? false;
  if (input.issuer !== undefined) document.issuer = validateIssuer(input.issuer);
  if (input.revocationUrl !== undefined) document.revocation_url = validateRevocationUrl(input.revocationUrl);
  if (input.userinfoUrl !== undefined) document.userinfo_url = validateUserinfoUrl(input.userinfoUrl);
  if (input.apiBaseUrl !== undefined && input.apiBaseUrl !== "") document.api_base_url = validateApiBaseUrl(input.apiBaseUrl);
  if (input.apiTokenPlacement !== undefined) document.api_token_placement = validateApiTokenPlacement(input.apiTokenPlacement);
  // RFC 8414 / OpenID Connect Discovery: an issuer alone (no provider, no token_url) is
  // enough; what the credential sets explicitly wins over what is discovered.
  if (document.provider === undefined && document.token_url === undefined && document.issuer !== undefined) {
    await fillFromDiscovery(document, input.disablePkce !== undefined, input.authorizationResponseIssParameterSupported);
  }
  validateProvider(document);
  const assertion = deps.clientAssertionOf(document) as ReturnType<typeof clientAssertionOfCredential>;
  // private_key_jwt needs no secret (one may still be stored); any other method does.
  if (assertion === undefined || input.clientSecret !== "") {
    document.client_secret = secretBox.encrypt(validateClientSecret(input.clientSecret), clientSecretContext(id));
  }
  // A private_key_jwt credential signs from the start: the broker makes its first key, of the
  // algorithm the provider requires.
  if (assertion !== undefined) document.keys = [sealKey(secretBox, id, await generateSigningKey(assertion.signingAlg), "generated")];
  return document;
}
