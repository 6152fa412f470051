import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { BROKER_PARAMS, UNSUPPORTED_PARAMS } from "../oauth/authorize-url.js";
import type { CallbackSignature } from "../oauth/callback-params.js";
import type { JwtBearerRules } from "../oauth/jwt-bearer.js";
import { isLoopbackHost } from "../validation.js";

/** One `providers/<id>.yaml` file, as validated against catalog.schema.json. */
export interface CatalogEntry {
  id: string;
  display_name: string;
  documentation_url: string;
  /** Every entry in providers/ has one (catalog test); test catalogs may leave it out. */
  category?: CatalogCategory;
  /** A large platform's per-product entry names its platform. */
  family?: "google" | "microsoft" | "atlassian" | "zoho";
  parameters?: CatalogParameter[];
  endpoints: { authorize: string; token: string; revocation?: string; userinfo?: string; issuer?: string };
  authorize?: {
    scope_separator?: string;
    offline_access?: { method: "scope" | "param" | "none"; scope?: string; params?: Record<string, string> };
    default_params?: Record<string, string>;
    prompt_values?: string[];
    pkce?: boolean;
  };
  token?: {
    auth_method?: "client_secret_basic" | "client_secret_post" | "private_key_jwt";
    /** private_key_jwt: the key algorithm the provider requires, and the assertion's audience. */
    client_assertion?: { signing_alg?: "ES256" | "RS256"; audience?: "token_endpoint" | "issuer" };
    /** client_secret_basic: "form" encodes only what RFC 3986 does not leave unreserved; "raw" sends the values as they are. */
    basic_encoding?: "form" | "raw";
    client_id_param?: string;
    client_secret_param?: string;
    extra_params?: { exchange?: Record<string, string>; refresh?: Record<string, string> };
    /** The provider's own error codes, by what they mean for the connection. */
    errors?: { permanent?: string[]; transient?: string[] };
    body_format?: "form" | "json";
    response?: Partial<Record<TokenField, string | string[]>> & { ok_field?: string; error_field?: string };
    default_token_type?: string;
    default_expires_in?: number;
    refresh_token_rotates?: boolean;
    /** Seconds an unused refresh token stays valid, where the provider documents a limit. */
    refresh_token_idle_lifetime?: number;
  };
  metadata?: {
    response?: Record<string, string>;
    callback?: Record<string, string>;
    /** Every `callback` key's anchored pattern: a value from the browser is refused unless it matches. */
    callback_patterns?: Record<string, string>;
    /** What a `callback` value must equal, a template over connection-level parameters. */
    callback_equals?: Record<string, string>;
    /** A signature the provider's docs define over the redirect (Shopify's `hmac`). */
    callback_signature?: CallbackSignature;
    requests?: MetadataRequest[];
  };
  revocation?: RevocationSpec;
  api?: ApiSpec;
  grants?: {
    types?: Array<"authorization_code" | "refresh_token" | "client_credentials" | "device_code" | "jwt_bearer">;
    device_authorization?: string;
    audiences?: string[];
    private_key_jwt?: "required" | "supported";
    jwt_bearer?: JwtBearerSpec;
  };
  identity?: { source: "token_response" | "userinfo" | "id_token"; id?: string; email?: string; name?: string };
  notes?: string;
  sources: Record<string, string>;
}

export type CatalogCategory =
  | "crm" | "support" | "developer" | "project" | "marketing" | "finance" | "hr" | "communication"
  | "storage" | "ecommerce" | "analytics" | "identity" | "productivity" | "social" | "other";

/** A documented request made with the new access token right after the exchange. */
export interface MetadataRequest {
  url: string;
  method?: "GET" | "POST";
  token_scheme?: string;
  headers?: Record<string, string>;
  response: Record<string, string>;
}

/** How a provider wants the JWT bearer grant's assertion (see JwtBearerRules). */
export type JwtBearerSpec = JwtBearerRules;

/** How a provider revokes a grant, where it departs from RFC 7009. */
export interface RevocationSpec {
  supported: boolean;
  method?: "POST" | "DELETE" | "GET";
  url?: string;
  token?: "refresh_token" | "access_token" | "refresh_token_or_access_token";
  token_in?: "form" | "json" | "query" | "bearer" | "none";
  token_param?: string;
  token_type_hint?: boolean;
  client_auth?: "basic" | "form" | "json" | "none";
  headers?: Record<string, string>;
  success_status?: number[];
}

/** Where the provider's API lives and how a call carries the token. */
export interface ApiSpec {
  base_urls: Array<{ name: string; url: string; description?: string }>;
  token?: { in: "header" | "query"; name: string; scheme?: string };
  headers?: Record<string, string>;
  rejected_token?: { status?: number[]; body_field?: string; body_values?: string[] };
}

export type TokenField = "access_token" | "refresh_token" | "expires_in" | "token_type" | "scope" | "id_token";

export interface CatalogParameter {
  name: string;
  level: "credential" | "connection";
  pattern: string;
  default?: string;
  description: string;
}

export type EndpointName = keyof CatalogEntry["endpoints"];

/** A catalog that cannot be loaded; the message names the file and the rule. */
export class CatalogError extends Error {
  override readonly name = "CatalogError";
}

/**
 * Values a connection-level parameter must never accept, by where it sits in the URL. Each would
 * move the request to another host (`evil.com/x`, `a@b`, `acme.evil.com`) or another path.
 */
export const HOSTILE_VALUES = {
  host: [
    "evil.com/x", "a@b", "acme.evil.com", "acme.evil.com.", "a:1", "a/b", "a?b", "a#b", "a\\b", "a%2fb", "a b", "", ".", "..", "A\u0130",
    // For patterns with fixed dotted labels (Salesforce's `.my`, `--<sandbox>.sandbox.my`): a label
    // added before, between or after the fixed ones, or a fixed one replaced, empty or doubled.
    "acme.evil.my", "evil.acme.my", "acme.my.evil", "acme.my.", ".my", "acme..my", "acme.my.my", "acme.evil",
    "acme--dev.evil.sandbox.my", "acme--dev.sandbox.evil.my", "evil.acme--dev.sandbox.my", "acme.sandbox.my", "acme--dev.sandbox.my.evil",
    // Control and bidi characters too: the values are kept as metadata (issue 20, item 7).
    "a\u0000b", "a\u202eb",
  ],
  path: ["evil.com/x", "a/b", "a?b", "a#b", "a\\b", "a%2fb", "a%2Fb", "", ".", "..", "a b", "a\u0000b", "a\u202eb"],
} as const;

const PLACEHOLDER = /\{([a-z][a-z0-9_]*)\}/g;
/** Key of `sources` each present section needs. */
const SECTIONS_NEEDING_SOURCES = ["parameters", "metadata", "identity", "revocation", "api", "grants"] as const;
/** Path segments that hold secrets: never metadata. */
const SECRET_SEGMENT = /token|secret|password|code_verifier|^code$/i;

/**
 * The provider catalog: facts about providers as data (providers/*.yaml), validated at start-up
 * against catalog.schema.json and the rules below, so a broken entry stops the broker rather
 * than misdirecting a secret later.
 */
export class ProviderCatalog {
  readonly #entries: Map<string, CatalogEntry>;

  constructor(entries: readonly CatalogEntry[]) {
    this.#entries = new Map(entries.map((entry) => [entry.id, entry]));
  }

  /** Loads and checks every `*.yaml` file of `dir`. Throws CatalogError. */
  static load(dir: string, schemaPath: string): ProviderCatalog {
    return new ProviderCatalog(loadCatalogEntries(dir, schemaPath));
  }

  get(id: string): CatalogEntry | undefined {
    return this.#entries.get(id);
  }

  /** Every entry, in ID order. */
  list(): CatalogEntry[] {
    return [...this.#entries.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}

export function loadCatalogEntries(dir: string, schemaPath: string): CatalogEntry[] {
  const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
  const validate = ajv.compile<CatalogEntry>(JSON.parse(readFileSync(schemaPath, "utf8")) as object);
  let files: string[];
  try {
    files = readdirSync(dir).filter((name) => name.endsWith(".yaml")).sort();
  } catch (error) {
    throw new CatalogError(`provider catalog ${dir} cannot be read: ${(error as Error).message}`);
  }
  const entries: CatalogEntry[] = [];
  for (const file of files) {
    let document: unknown;
    try {
      document = parse(readFileSync(join(dir, file), "utf8"));
    } catch (error) {
      throw new CatalogError(`providers/${file}: not valid YAML: ${(error as Error).message}`);
    }
    if (!validate(document)) {
      const problems = (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""}`).join("; ");
      throw new CatalogError(`providers/${file}: does not match the catalog schema: ${problems}`);
    }
    const problems = entryProblems(document, basename(file, ".yaml"));
    if (problems.length > 0) throw new CatalogError(`providers/${file}: ${problems.join("; ")}`);
    entries.push(document);
  }
  const problems = catalogProblems(entries);
  if (problems.length > 0) throw new CatalogError(`provider catalog: ${problems.join("; ")}`);
  return entries;
}

/** Rules across entries: unique IDs, and one meaning per metadata key. */
export function catalogProblems(entries: readonly CatalogEntry[]): string[] {
  const problems: string[] = [];
  const ids = new Set<string>();
  // A metadata key means one thing in every entry that uses it. Mechanically: the field it comes
  // from, with dots as underscores, is the same or one ends with the other (Slack's `team.id` and
  // another provider's `team_id` agree; `team_id` from a field named `id` of something else would not).
  const meanings = new Map<string, { source: string; id: string }>();
  for (const entry of entries) {
    if (ids.has(entry.id)) problems.push(`duplicate id "${entry.id}"`);
    ids.add(entry.id);
    for (const [key, source] of metadataSources(entry)) {
      const seen = meanings.get(key);
      if (seen === undefined) meanings.set(key, { source, id: entry.id });
      else if (!sameMeaning(seen.source, source)) {
        problems.push(`metadata key "${key}" comes from "${source}" in "${entry.id}" but from "${seen.source}" in "${seen.id}"`);
      }
    }
  }
  return problems;
}

function sameMeaning(a: string, b: string): boolean {
  const [x, y] = [a.replaceAll(".", "_").toLowerCase(), b.replaceAll(".", "_").toLowerCase()];
  return x === y || x.endsWith(`_${y}`) || y.endsWith(`_${x}`);
}

/** Each metadata key of an entry with the response path, callback parameter, metadata request path or template parameter it comes from. */
function metadataSources(entry: CatalogEntry): Array<[string, string]> {
  return [
    ...Object.entries(entry.metadata?.response ?? {}),
    ...Object.entries(entry.metadata?.callback ?? {}),
    ...(entry.metadata?.requests ?? []).flatMap((request) => Object.entries(request.response)),
    ...(entry.parameters ?? []).filter((p) => p.level === "connection").map((p): [string, string] => [p.name, p.name]),
  ];
}

/** Rules of one entry that the JSON Schema cannot express. */
export function entryProblems(entry: CatalogEntry, fileId: string): string[] {
  const problems: string[] = [];
  if (entry.id !== fileId) problems.push(`id "${entry.id}" must equal the file name "${fileId}"`);

  for (const [where, url] of [["documentation_url", entry.documentation_url], ...Object.entries(entry.sources).map(([k, v]) => [`sources.${k}`, v])]) {
    const problem = urlProblem(url!);
    if (problem !== undefined) problems.push(`${where} ${problem}`);
  }
  for (const section of SECTIONS_NEEDING_SOURCES) {
    if (entry[section] !== undefined && !Object.keys(entry.sources).some((key) => key === section || key.startsWith(`${section}.`))) {
      problems.push(`sources must name the document for "${section}"`);
    }
  }

  const parameters = new Map((entry.parameters ?? []).map((parameter) => [parameter.name, parameter]));
  if (parameters.size !== (entry.parameters ?? []).length) problems.push("parameters must have unique names");
  for (const parameter of parameters.values()) {
    try {
      const pattern = new RegExp(parameter.pattern, "u");
      if (parameter.default !== undefined && !pattern.test(parameter.default)) {
        problems.push(`parameter "${parameter.name}" default does not match its pattern`);
      }
    } catch {
      problems.push(`parameter "${parameter.name}" pattern is not a valid regular expression`);
    }
  }
  const used = new Set<string>();
  for (const [name, template] of Object.entries(entry.endpoints) as Array<[EndpointName, string]>) {
    for (const match of template.matchAll(PLACEHOLDER)) used.add(match[1]!);
    problems.push(...templateProblems(`endpoints.${name}`, template, parameters));
  }
  for (const name of parameters.keys()) if (!used.has(name)) problems.push(`parameter "${name}" is not used by any endpoint`);

  const reserved = new Set<string>([...BROKER_PARAMS, ...UNSUPPORTED_PARAMS]);
  for (const [where, params] of [
    ["authorize.default_params", entry.authorize?.default_params],
    ["authorize.offline_access.params", entry.authorize?.offline_access?.params],
  ] as const) {
    for (const key of Object.keys(params ?? {})) {
      // `prompt` in default_params is the provider's default prompt, sent as the broker's own.
      if (reserved.has(key) && !(key === "prompt" && where === "authorize.default_params")) {
        problems.push(`${where} must not set "${key}" (the broker sets it)`);
      }
    }
  }
  const defaultPrompt = entry.authorize?.default_params?.prompt;
  const promptValues = entry.authorize?.prompt_values;
  if (defaultPrompt !== undefined && promptValues !== undefined && defaultPrompt.split(" ").some((v) => !promptValues.includes(v))) {
    problems.push("authorize.default_params.prompt must be one of authorize.prompt_values");
  }

  const keys = new Set<string>();
  for (const [key, path] of Object.entries(entry.metadata?.response ?? {})) {
    if (path.split(".").some((segment) => SECRET_SEGMENT.test(segment)) || SECRET_SEGMENT.test(key)) {
      problems.push(`metadata.response.${key} must not name a secret ("${path}")`);
    }
    keys.add(key);
  }
  for (const [key, name] of Object.entries(entry.metadata?.callback ?? {})) {
    if (["state", "code", "iss", "error", "error_description", "error_uri"].includes(name) || SECRET_SEGMENT.test(key)) {
      problems.push(`metadata.callback.${key} must not name "${name}" (an OAuth parameter)`);
    }
    if (keys.has(key)) problems.push(`metadata key "${key}" is defined twice`);
    keys.add(key);
  }
  for (const [index, request] of (entry.metadata?.requests ?? []).entries()) {
    problems.push(...templateProblems(`metadata.requests[${index}].url`, request.url, parameters));
    for (const [key, path] of Object.entries(request.response)) {
      if (path.split(".").some((segment) => SECRET_SEGMENT.test(segment)) || SECRET_SEGMENT.test(key)) {
        problems.push(`metadata.requests[${index}].response.${key} must not name a secret ("${path}")`);
      }
      keys.add(key);
    }
  }
  for (const parameter of parameters.values()) {
    if (parameter.level === "connection" && keys.has(parameter.name)) {
      problems.push(`metadata key "${parameter.name}" is also a connection parameter`);
    }
  }
  problems.push(...callbackRuleProblems(entry, parameters));
  problems.push(...apiProblems(entry, parameters, keys), ...revocationProblems(entry, parameters));
  return problems;
}

/** `revocation`: a URL to send to, template rules as endpoints (plus `{client_id}`), one Authorization header. */
function revocationProblems(entry: CatalogEntry, parameters: ReadonlyMap<string, CatalogParameter>): string[] {
  const revocation = entry.revocation;
  if (revocation === undefined || !revocation.supported) return [];
  const problems: string[] = [];
  if (revocation.url === undefined && entry.endpoints.revocation === undefined) problems.push("revocation needs a url or endpoints.revocation");
  if (revocation.url !== undefined) {
    const client: CatalogParameter = { name: "client_id", level: "credential", pattern: "^.+$", description: "the client ID" };
    problems.push(...templateProblems("revocation.url", revocation.url, new Map([...parameters, ["client_id", client]])));
  }
  if (revocation.token_in === "bearer" && revocation.client_auth === "basic") {
    problems.push("revocation.token_in bearer and client_auth basic would both need the Authorization header");
  }
  return problems;
}

/**
 * A value from the callback query is whatever the browser sent (issue 20, item 7:
 * `realmId=../../v3/company/OTHER` was stored and handed out), so each needs a pattern; a value
 * to compare or a signature must refer to what exists.
 */
function callbackRuleProblems(entry: CatalogEntry, parameters: ReadonlyMap<string, CatalogParameter>): string[] {
  const problems: string[] = [];
  const callback = entry.metadata?.callback ?? {};
  const patterns = entry.metadata?.callback_patterns ?? {};
  for (const key of Object.keys(callback)) {
    if (patterns[key] === undefined) problems.push(`metadata.callback.${key} needs a pattern in metadata.callback_patterns`);
  }
  for (const [key, pattern] of Object.entries(patterns)) {
    if (callback[key] === undefined) problems.push(`metadata.callback_patterns.${key} is not a metadata.callback key`);
    try {
      new RegExp(pattern, "u");
    } catch {
      problems.push(`metadata.callback_patterns.${key} is not a valid regular expression`);
    }
  }
  for (const [key, template] of Object.entries(entry.metadata?.callback_equals ?? {})) {
    if (callback[key] === undefined) problems.push(`metadata.callback_equals.${key} is not a metadata.callback key`);
    for (const match of template.matchAll(PLACEHOLDER)) {
      if (parameters.get(match[1]!)?.level !== "connection") {
        problems.push(`metadata.callback_equals.${key} uses "{${match[1]}}" which is not a connection parameter`);
      }
    }
  }
  const signature = entry.metadata?.callback_signature?.parameter;
  if (signature !== undefined && Object.values(callback).includes(signature)) {
    problems.push(`metadata.callback_signature.parameter "${signature}" must not be kept as metadata`);
  }
  return problems;
}

/**
 * `api.base_urls` templates: every placeholder a parameter or a metadata key; a metadata key that
 * holds a whole URL only alone at the start (`{instance_url}/services/data`); otherwise an https
 * URL whose host takes a connection parameter or metadata value only as its first label under a
 * fixed domain, and no placeholder in the query.
 */
function apiProblems(entry: CatalogEntry, parameters: ReadonlyMap<string, CatalogParameter>, metadataKeys: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(entry.api?.headers ?? {})) {
    for (const match of value.matchAll(PLACEHOLDER)) {
      if (!parameters.has(match[1]!) && !metadataKeys.has(match[1]!)) problems.push(`api.headers.${name} uses "{${match[1]}}" which is neither a parameter nor a metadata key`);
    }
  }
  for (const [index, base] of (entry.api?.base_urls ?? []).entries()) {
    const where = `api.base_urls[${index}].url`;
    const names = [...base.url.matchAll(PLACEHOLDER)].map((match) => match[1]!);
    for (const name of names) {
      if (!parameters.has(name) && !metadataKeys.has(name)) problems.push(`${where} uses "{${name}}" which is neither a parameter nor a metadata key`);
    }
    const leading = /^\{([a-z][a-z0-9_]*)\}(\/[^?#]*)?$/.exec(base.url);
    if (leading !== null) {
      if (parameters.has(leading[1]!)) problems.push(`${where} may start with a metadata key only, not the parameter "${leading[1]}"`);
      continue;
    }
    const shape = /^https?:\/\/([^/?#]+)(\/[^?#]*)?$/.exec(base.url);
    if (shape === null) {
      problems.push(`${where} must be an absolute URL without query or fragment, or start with a metadata key that holds one`);
      continue;
    }
    const problem = urlProblem(base.url.replace(PLACEHOLDER, "sample"));
    if (problem !== undefined) problems.push(`${where} ${problem}`);
    const labels = shape[1]!.split(".");
    for (const name of names) {
      if (!shape[1]!.includes(`{${name}}`) || parameters.get(name)?.level === "credential") continue;
      if (labels[0] !== `{${name}}` || labels.length < 3 || labels.slice(1).some((label) => label.includes("{"))) {
        problems.push(`${where} "{${name}}" may only fill the first label of a host under a fixed domain`);
      }
    }
  }
  return problems;
}

/**
 * Where placeholders may sit: a connection-level one only as a whole path segment, or as the
 * leftmost DNS label of a host under a fixed domain of at least two labels; a credential-level
 * one anywhere in the host or as a path segment. Never in the scheme, user info, query or port.
 * Connection-level patterns must refuse every hostile value for their position.
 */
function templateProblems(where: string, template: string, parameters: ReadonlyMap<string, CatalogParameter>): string[] {
  const problems: string[] = [];
  const names = [...template.matchAll(PLACEHOLDER)].map((match) => match[1]!);
  for (const name of names) if (!parameters.has(name)) problems.push(`${where} uses "{${name}}" which is not a parameter`);
  const shape = /^(https?):\/\/([^/?#]+)(\/[^?#]*)?(\?[^#]*)?$/.exec(template);
  if (shape === null) return [...problems, `${where} must be an absolute URL without a fragment`];
  const [, , authority, path = "", query = ""] = shape as unknown as [string, string, string, string | undefined, string | undefined];
  if (query.includes("{")) problems.push(`${where} must not have a placeholder in its query`);
  // A fixed port is harmless (test catalogs on loopback have one); a templated one is not.
  if (authority.includes("@") || /:(?![0-9]+$)/.test(authority.replace(/\{[^}]*\}/g, "x"))) {
    problems.push(`${where} must not have user info or a templated port`);
  }
  const sample = template.replace(PLACEHOLDER, "sample");
  const problem = urlProblem(sample);
  if (problem !== undefined) problems.push(`${where} ${problem}`);

  for (const name of names) {
    const parameter = parameters.get(name);
    if (parameter === undefined) continue;
    const placeholder = `{${name}}`;
    const inHost = authority.includes(placeholder);
    const segments = path.split("/");
    const asSegment = segments.includes(placeholder);
    if (!inHost && !asSegment) problems.push(`${where} must use "${placeholder}" as a whole path segment or in the host`);
    if (parameter.level !== "connection") continue;
    if (inHost) {
      const unfixed = unfixedDot(parameter.pattern);
      if (unfixed !== undefined) problems.push(`parameter "${name}" pattern may hold a dot only before a fixed label (${unfixed})`);
      const labels = authority.split(".");
      // A label under a fixed domain: `{shop}.myshopify.com`, never `{shop}.com` or `x{shop}.com`.
      const fixed = labels.slice(1);
      if (labels[0] !== placeholder || fixed.length < 2 || fixed.some((label) => label.includes("{"))) {
        problems.push(`${where} connection parameter "${name}" may only fill the first label of a host under a fixed domain`);
      }
    }
    let pattern: RegExp;
    try {
      pattern = new RegExp(parameter.pattern, "u");
    } catch {
      continue;
    }
    for (const value of inHost ? HOSTILE_VALUES.host : HOSTILE_VALUES.path) {
      if (pattern.test(value)) problems.push(`parameter "${name}" pattern accepts the hostile value ${JSON.stringify(value)}`);
    }
  }
  return problems;
}

/**
 * Why a host parameter's pattern lets a value hold a dot the pattern does not fix, or undefined.
 * A dot may only be a literal `\.` followed by a literal label, then the end, another `\.`, an
 * alternative or a group that closes without repeating: Salesforce's `acme--dev.sandbox.my`
 * adds only the labels `sandbox` and `my`, never one of the caller's choosing.
 */
export function unfixedDot(pattern: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "\\") {
      const next = pattern[i + 1];
      i++;
      if (next !== ".") continue;
      if (inClass) return "an escaped dot in a character class";
      const label = /^[A-Za-z0-9-]+/.exec(pattern.slice(i + 1))?.[0];
      if (label === undefined) return "a dot not followed by a fixed label";
      let j = i + 1 + label.length;
      while (pattern[j] === ")") {
        j++;
        if (pattern[j] === "?") j++;
        if (["*", "+", "{"].includes(pattern[j] ?? "")) return "a repeated group with a dot";
      }
      const after = pattern.slice(j, j + 2);
      if (!(after.startsWith("$") || after.startsWith("|") || after === "\\.")) return "a fixed label followed by more pattern";
      continue;
    }
    if (c === "[") inClass = true;
    else if (c === "]") inClass = false;
    else if (c === ".") return inClass ? "a dot in a character class" : "an unescaped dot";
  }
  return undefined;
}

/** Catalog URLs are https; plain http only for loopback hosts (test catalogs), like every endpoint. */
function urlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "must be an absolute URL";
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname))) return "must be an https URL";
  if (url.username !== "" || url.password !== "") return "must not contain a user name or password";
  return undefined;
}

/** The catalog the broker runs with: `dir` (BROKER_PROVIDERS_DIR) or the repository's providers/. */
export function loadProviderCatalog(root: string, dir: string | undefined): ProviderCatalog {
  return ProviderCatalog.load(dir ?? join(root, "providers"), join(root, "src", "providers", "catalog.schema.json"));
}
