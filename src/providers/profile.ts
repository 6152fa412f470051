import { invalid } from "../errors.js";
import type { TokenEndpointAuthMethodName } from "../oauth/client-authentication.js";
import type { RevocationRequest } from "../oauth/token-exchange.js";
import type { SigningAlgorithm } from "../crypto/signing-keys.js";
import { STANDARD_TOKEN_RESPONSE as STANDARD_RESPONSE, type TokenResponseRules } from "../oauth/token-response.js";
import { GENERIC_AUTHORIZATION_RULES } from "../oauth/authorize-url.js";
import type { CallbackSignature } from "../oauth/callback-params.js";
import type { MetadataRequest } from "../oauth/metadata-requests.js";
import type { ApiSpec, CatalogEntry, CatalogParameter, EndpointName, ProviderCatalog } from "./catalog.js";
import type { JwtBearerRules } from "../oauth/jwt-bearer.js";

/** How a provider grants a refresh token (offline access). */
export type OfflineAccess = { method: "scope"; scope: string } | { method: "param"; params: Record<string, string> } | { method: "none" };

/**
 * Everything the broker needs to know about how a provider does OAuth, for one credential and one
 * connection: the answer to every "how does this provider do X" question. Built from a catalog
 * entry merged with the credential's explicit fields, or from the credential's fields alone (the
 * generic behaviour). The URL builder, the token client and the callback ask it; nothing else
 * branches on a provider.
 */
export interface ProviderProfile {
  /** The catalog ID, or undefined for a generic credential. */
  providerId: string | undefined;
  /** Endpoints with every template parameter filled in. */
  authorizeUrl: string | undefined;
  tokenUrl: string;
  revocationUrl: string | undefined;
  userinfoUrl: string | undefined;
  issuer: string | undefined;
  /** RFC 8628 §3.1: the catalog's `grants.device_authorization`, filled in; undefined when it names none. */
  deviceAuthorizationUrl: string | undefined;
  authorize: {
    scopeSeparator: string;
    offlineAccess: OfflineAccess;
    /** Parameters sent unless the caller's `additional_params` sets the same key. */
    defaultParams: ReadonlyArray<readonly [string, string]>;
    /** The prompt when the caller gives none; `undefined`: no prompt. */
    defaultPrompt: string | undefined;
    /** The generic rule: no default prompt when the caller sends Google's legacy `approval_prompt`. */
    approvalPromptSuppressesDefault: boolean;
    /** The prompt values the provider documents; undefined: any. */
    promptValues: readonly string[] | undefined;
    pkce: boolean;
  };
  token: {
    authMethod: TokenEndpointAuthMethodName;
    /** private_key_jwt: the key algorithm the provider requires, and the assertion's `aud`. */
    clientAssertion: { signingAlg: SigningAlgorithm; audience: string };
    bodyFormat: "form" | "json";
    response: TokenResponseRules;
    /** Whether each refresh returns a new refresh token; undefined when unknown. */
    refreshTokenRotates: boolean | undefined;
    basicEncoding: "form" | "raw";
    clientIdParam: string | undefined;
    clientSecretParam: string | undefined;
    extraParams: { exchange?: Readonly<Record<string, string>>; refresh?: Readonly<Record<string, string>> };
    /** The provider's own error codes that end the grant (permanent) or that are worth retrying (transient). */
    errors: { permanent: readonly string[]; transient: readonly string[] };
  };
  /** Non-secret values kept as connection metadata: our key -> token response path / callback query name. */
  metadata: {
    response: Readonly<Record<string, string>>;
    callback: Readonly<Record<string, string>>;
    /** Each callback value's anchored pattern (required by the catalog for every callback key). */
    callbackPatterns: Readonly<Record<string, string>>;
    /** What a callback value must equal, the connection's values filled in. */
    callbackEquals: Readonly<Record<string, string>>;
    /** The signature the provider puts on its redirect, when its docs define one. */
    callbackSignature: CallbackSignature | undefined;
  };
  /** Where the connected account's identity is, for a later identity lookup. */
  identity: CatalogEntry["identity"];
  /** How the JWT bearer grant's assertion is made for this provider. */
  jwtBearer: JwtBearerRules;
  /** The connection-level template values, kept on the connection and in its metadata. */
  connectionConfig: Readonly<Record<string, string>>;
  /** Every template value (credential and connection level), for rendering `api`. */
  templateValues: Readonly<Record<string, string>>;
  /** Where the provider's API lives (rendered per connection by renderApi). */
  api: ApiSpec | undefined;
  /** How the revocation request is made (at `revocationUrl`; none there: not supported). */
  revocation: RevocationRules;
  /** Requests made with the new access token right after the exchange, for metadata. */
  metadataRequests: readonly MetadataRequest[];
}

/** The revocation request, RFC 7009 §2.1 unless the entry's `revocation` says otherwise. */
export interface RevocationRules extends RevocationRequest {
  /** Which of the connection's tokens the request sends. */
  token: "refresh_token" | "access_token" | "refresh_token_or_access_token";
}

/** The credential fields a profile is built from (a stored credential document has them all). */
export interface ProfileCredential {
  provider?: string;
  provider_config?: Record<string, string>;
  token_url?: string;
  revocation_url?: string;
  userinfo_url?: string;
  issuer?: string;
  token_endpoint_auth_method?: TokenEndpointAuthMethodName;
  disable_pkce?: boolean;
  /** For revocation URLs that name the client (GitHub's `/applications/{client_id}/grant`). */
  client_id?: string;
}

/**
 * The profile of a credential. `entry` is its catalog entry (undefined without `provider`);
 * `connectionConfig` the connection's template values, checked here against the entry's
 * connection-level parameters. Throws InvalidInputError naming the field.
 */
export function buildProviderProfile(
  credential: ProfileCredential,
  entry: CatalogEntry | undefined,
  connectionConfig: Readonly<Record<string, string>> = {},
): ProviderProfile {
  if (entry === undefined) return genericProfile(credential, connectionConfig);
  const values = {
    ...checkTemplateValues(entry, "credential", credential.provider_config ?? {}, "credential.provider_config"),
    ...checkTemplateValues(entry, "connection", connectionConfig, "connection_config"),
  };
  const endpoint = (name: EndpointName): string | undefined => {
    const template = entry.endpoints[name];
    return template === undefined ? undefined : renderEndpoint(template, values, entry.parameters ?? []);
  };
  const response = entry.token?.response ?? {};
  const paths = Object.fromEntries(
    Object.entries(STANDARD_RESPONSE.paths).map(([field, standard]) => {
      const given = response[field as keyof typeof STANDARD_RESPONSE.paths];
      return [field, given === undefined ? standard : [given].flat()];
    }),
  ) as TokenResponseRules["paths"];
  const defaults = Object.entries(entry.authorize?.default_params ?? {});
  const authMethod = credential.token_endpoint_auth_method ?? entry.token?.auth_method ?? "client_secret_basic";
  const offline = entry.authorize?.offline_access;
  const tokenUrl = credential.token_url ?? endpoint("token")!;
  const issuer = credential.issuer ?? endpoint("issuer");
  const assertion = entry.token?.client_assertion;
  return {
    providerId: entry.id,
    authorizeUrl: endpoint("authorize"),
    tokenUrl,
    revocationUrl: credential.revocation_url ?? revocationUrl(entry, values, credential.client_id),
    userinfoUrl: credential.userinfo_url ?? endpoint("userinfo"),
    issuer,
    deviceAuthorizationUrl:
      entry.grants?.device_authorization === undefined ? undefined : renderEndpoint(entry.grants.device_authorization, values, entry.parameters ?? []),
    authorize: {
      scopeSeparator: entry.authorize?.scope_separator ?? " ",
      offlineAccess:
        offline === undefined
          ? { method: "none" }
          : offline.method === "scope"
            ? { method: "scope", scope: offline.scope! }
            : offline.method === "param"
              ? { method: "param", params: offline.params! }
              : { method: "none" },
      defaultParams: defaults.filter(([key]) => key !== "prompt"),
      defaultPrompt: entry.authorize?.default_params?.prompt,
      approvalPromptSuppressesDefault: false,
      promptValues: entry.authorize?.prompt_values,
      // Unset on the credential: PKCE unless the catalog says the provider does not support it.
      pkce: credential.disable_pkce === undefined ? entry.authorize?.pkce !== false : !credential.disable_pkce,
    },
    token: {
      authMethod,
      clientAssertion: {
        signingAlg: assertion?.signing_alg ?? "ES256",
        audience: assertion?.audience === "issuer" && issuer !== undefined ? issuer : tokenUrl,
      },
      bodyFormat: entry.token?.body_format ?? "form",
      response: {
        paths,
        okField: response.ok_field,
        errorField: response.error_field ?? "error",
        defaultTokenType: entry.token?.default_token_type?.toLowerCase(),
        defaultExpiresIn: entry.token?.default_expires_in,
        metadata: entry.metadata?.response ?? {},
      },
      refreshTokenRotates: entry.token?.refresh_token_rotates,
      basicEncoding: entry.token?.basic_encoding ?? "form",
      clientIdParam: entry.token?.client_id_param,
      clientSecretParam: entry.token?.client_secret_param,
      extraParams: entry.token?.extra_params ?? {},
      errors: { permanent: entry.token?.errors?.permanent ?? [], transient: entry.token?.errors?.transient ?? [] },
    },
    metadata: {
      response: entry.metadata?.response ?? {},
      callback: entry.metadata?.callback ?? {},
      callbackPatterns: entry.metadata?.callback_patterns ?? {},
      callbackEquals: Object.fromEntries(
        Object.entries(entry.metadata?.callback_equals ?? {}).map(([key, template]) => [
          key,
          template.replace(/\{([a-z][a-z0-9_]*)\}/g, (_, name: string) => values[name] ?? ""),
        ]),
      ),
      callbackSignature: entry.metadata?.callback_signature,
    },
    identity: entry.identity,
    jwtBearer: entry.grants?.jwt_bearer ?? RFC7523_JWT_BEARER,
    connectionConfig: checkTemplateValues(entry, "connection", connectionConfig, "connection_config"),
    templateValues: values,
    api: entry.api,
    revocation: revocationRules(entry.revocation, authMethod),
    metadataRequests: (entry.metadata?.requests ?? []).map((request) => ({
      url: renderEndpoint(request.url, values, entry.parameters ?? []),
      method: request.method ?? "GET",
      tokenScheme: request.token_scheme ?? "Bearer",
      headers: request.headers ?? {},
      response: request.response,
    })),
  };
}

/** The seed's behaviour, unchanged: the credential's own fields, `offline_access`, `prompt=login`. */
function genericProfile(credential: ProfileCredential, connectionConfig: Readonly<Record<string, string>>): ProviderProfile {
  for (const key of Object.keys(connectionConfig)) invalid(`connection_config.${key.slice(0, 64)}`, "is not a parameter of the credential's provider");
  if (credential.token_url === undefined) throw new Error("a credential without provider has no token_url");
  return {
    providerId: undefined,
    authorizeUrl: undefined,
    tokenUrl: credential.token_url,
    revocationUrl: credential.revocation_url,
    userinfoUrl: credential.userinfo_url,
    issuer: credential.issuer,
    deviceAuthorizationUrl: undefined,
    authorize: { ...GENERIC_AUTHORIZATION_RULES, pkce: credential.disable_pkce !== true },
    token: {
      authMethod: credential.token_endpoint_auth_method ?? "client_secret_basic",
      clientAssertion: { signingAlg: "ES256", audience: credential.token_url },
      bodyFormat: "form",
      response: STANDARD_RESPONSE,
      refreshTokenRotates: undefined,
      basicEncoding: "form",
      clientIdParam: undefined,
      clientSecretParam: undefined,
      extraParams: {},
      errors: { permanent: [], transient: [] },
    },
    metadata: { response: {}, callback: {}, callbackPatterns: {}, callbackEquals: {}, callbackSignature: undefined },
    identity: undefined,
    jwtBearer: RFC7523_JWT_BEARER,
    connectionConfig: {},
    templateValues: {},
    api: undefined,
    revocation: revocationRules(undefined, credential.token_endpoint_auth_method ?? "client_secret_basic"),
    metadataRequests: [],
  };
}

/** The revocation URL: the entry's `revocation.url` (with `{client_id}`) or endpoints.revocation; none when unsupported. */
function revocationUrl(entry: CatalogEntry, values: Readonly<Record<string, string>>, clientId: string | undefined): string | undefined {
  if (entry.revocation?.supported === false) return undefined;
  const template = entry.revocation?.url ?? entry.endpoints.revocation;
  if (template === undefined) return undefined;
  if (template.includes("{client_id}") && clientId === undefined) return undefined;
  const clientParameter: CatalogParameter = { name: "client_id", level: "credential", pattern: "^.+$", description: "the client ID" };
  return renderEndpoint(template, { ...values, client_id: clientId ?? "" }, [...(entry.parameters ?? []), clientParameter]);
}

function revocationRules(spec: CatalogEntry["revocation"], authMethod: TokenEndpointAuthMethodName): RevocationRules {
  return {
    method: spec?.method ?? "POST",
    token: spec?.token ?? "refresh_token_or_access_token",
    tokenIn: spec?.token_in ?? "form",
    tokenParam: spec?.token_param ?? "token",
    tokenTypeHint: spec?.token_type_hint ?? true,
    // RFC 7009 §2.1: the client authenticates as at the token endpoint.
    clientAuth: spec?.client_auth ?? (authMethod === "client_secret_post" ? "form" : "basic"),
    headers: spec?.headers ?? {},
    successStatus: spec?.success_status ?? [200],
  };
}

/**
 * Checks the values of one level of template parameters: every parameter of that level present
 * (or filled from its default) and matching its pattern, nothing else. Values are never echoed (they are the caller's), only
 * the key. Throws InvalidInputError.
 */
export function checkTemplateValues(
  entry: CatalogEntry,
  level: CatalogParameter["level"],
  values: Readonly<Record<string, string>>,
  field: string,
): Record<string, string> {
  const parameters = (entry.parameters ?? []).filter((parameter) => parameter.level === level);
  for (const key of Object.keys(values)) {
    const parameter = (entry.parameters ?? []).find((candidate) => candidate.name === key);
    if (parameter === undefined) invalid(`${field}.${key.slice(0, 64)}`, `is not a parameter of provider "${entry.id}"`);
    if (parameter.level !== level) {
      invalid(`${field}.${key}`, parameter.level === "credential" ? "is a credential-level parameter (set it in the credential's provider_config)" : "is a connection-level parameter (set it in connection_config)");
    }
  }
  const checked: Record<string, string> = {};
  for (const parameter of parameters) {
    const given = values[parameter.name];
    const value = given === undefined || given === "" ? parameter.default : given;
    if (value === undefined) invalid(`${field}.${parameter.name}`, `is required by provider "${entry.id}"`);
    if (value.length > 253 || !new RegExp(parameter.pattern, "u").test(value)) {
      invalid(`${field}.${parameter.name}`, `does not match the pattern of provider "${entry.id}" (see GetProvider)`);
    }
    checked[parameter.name] = value;
  }
  return checked;
}

/**
 * Fills a catalog URL template. The values were checked against their patterns; as a second line
 * of defence the result must still have the template's shape: the same scheme, a host that is
 * the template's host with the values in place (a value cannot add a `/`, `@`, `:` or `.`
 * that moves the request elsewhere), and the same number of path segments.
 */
export function renderEndpoint(template: string, values: Readonly<Record<string, string>>, parameters: readonly CatalogParameter[]): string {
  const shape = /^(https?:\/\/)([^/?#]+)(.*)$/.exec(template);
  if (shape === null) throw new Error(`catalog template ${template} is not an absolute URL`);
  const [, scheme, hostTemplate, rest] = shape as unknown as [string, string, string, string];
  const fill = (text: string, encode: boolean) =>
    text.replace(/\{([a-z][a-z0-9_]*)\}/g, (_, name: string) => {
      const value = values[name];
      if (value === undefined) throw new Error(`template parameter ${name} has no value`);
      return encode ? encodeURIComponent(value) : value;
    });
  const expectedHost = fill(hostTemplate, false).toLowerCase();
  const rendered = `${scheme}${expectedHost}${fill(rest, true)}`;
  const url = new URL(rendered);
  const field = (name: string) => {
    const parameter = parameters.find((candidate) => candidate.name === name);
    return parameter?.level === "credential" ? `credential.provider_config.${name}` : `connection_config.${name}`;
  };
  const names = [...template.matchAll(/\{([a-z][a-z0-9_]*)\}/g)].map((match) => match[1]!);
  const inHost = names.filter((name) => hostTemplate.includes(`{${name}}`));
  const inPath = names.filter((name) => !hostTemplate.includes(`{${name}}`));
  if (url.host !== expectedHost || `${url.protocol}//` !== scheme) invalid(field(inHost[0] ?? names[0] ?? "host"), "would change the endpoint's host");
  // A connection-level value fills the first label of a host under the template's fixed domain;
  // any label it adds must be one its pattern fixes after a literal dot (Salesforce's `.my`).
  const connectionInHost = inHost.find((name) => field(name).startsWith("connection_config"));
  if (connectionInHost !== undefined) {
    const pattern = parameters.find((candidate) => candidate.name === connectionInHost)?.pattern ?? "";
    const added = (values[connectionInHost] ?? "").split(".").slice(1);
    if (added.some((label) => !pattern.includes(`\\.${label}`)) || !url.hostname.endsWith(hostTemplate.slice(hostTemplate.indexOf(".")).toLowerCase())) {
      invalid(field(connectionInHost), "would change the endpoint's host");
    }
  }
  const segments = (path: string) => path.split("?")[0]!.split("/").length;
  if (segments(url.pathname) !== segments(rest === "" ? "/" : rest) || url.pathname.split("/").some((s) => s === "." || s === "..")) {
    invalid(field(inPath[0] ?? names[0] ?? "path"), "would change the endpoint's path");
  }
  return url.href;
}

/** The profile seam: a credential's provider profile for one connection's template values. */
export function profileFor(
  catalog: ProviderCatalog,
  credential: ProfileCredential,
  connectionConfig: Readonly<Record<string, string>> = {},
): ProviderProfile {
  const entry = credential.provider === undefined ? undefined : catalog.get(credential.provider);
  // A stored credential whose entry left the catalog cannot be used until it is fixed.
  if (credential.provider !== undefined && entry === undefined) invalid("credential.provider", "is not in the provider catalog");
  return buildProviderProfile(credential, entry, connectionConfig);
}

/** Where the account that signs in is learnt (see `accountSourceOf`). */
export type AccountSource = "token_response" | "id_token" | "userinfo";

/**
 * Where the broker learns who signed in, for a request that does (`idToken`: `openid` with an
 * issuer) or does not bring an ID token: the catalog's `identity`, else the verified ID token's
 * claims (OpenID Connect Core §2), else the userinfo endpoint (§5.3). Undefined when nothing
 * would say, so a reconnect could not prove it is the same account.
 */
export function accountSourceOf(profile: ProviderProfile, idToken: boolean): AccountSource | undefined {
  if (profile.identity?.source === "token_response") return "token_response";
  if (idToken && profile.identity?.source !== "userinfo") return "id_token";
  return profile.userinfoUrl === undefined ? undefined : "userinfo";
}

/**
 * What the catalog says of a provider's grants beyond the authorization code (its `grants`):
 * whether it supports `grant` (true when the entry does not list its grants, or there is no
 * entry), and the audience values it documents (undefined: any).
 */
export function catalogGrants(
  catalog: ProviderCatalog,
  credential: ProfileCredential,
  grant: NonNullable<NonNullable<CatalogEntry["grants"]>["types"]>[number],
): { supported: boolean; audiences: readonly string[] | undefined } {
  const grants = credential.provider === undefined ? undefined : catalog.get(credential.provider)?.grants;
  const audiences = grants?.audiences !== undefined && grants.audiences.length > 0 ? grants.audiences : undefined;
  return { supported: grants?.types === undefined || grants.types.includes(grant), audiences };
}

/**
 * The JWT bearer grant as RFC 7523 §3 writes it, for a provider whose entry does not say (or no
 * entry): `iss` the client ID, `aud` the token endpoint, `sub` required, scopes as the RFC 7521
 * §4.1 `scope` parameter, and a short lifetime (5 minutes).
 */
const RFC7523_JWT_BEARER: JwtBearerRules = { issuer: "client_id", audience: "token_endpoint", scope: "parameter", max_lifetime: 300, subject: "required" };
