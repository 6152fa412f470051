import type { ApiSpec } from "./catalog.js";

/**
 * Where the connection's provider API lives (the catalog's `api`, rendered with the connection's
 * values and metadata) and how a call carries the token. Rendered when tokens are stored, so
 * reading a connection or a token needs no catalog lookup.
 */
export interface ConnectionApi {
  base_urls: Array<{ name: string; url: string; description?: string }>;
  token: { in: "header" | "query"; name: string; scheme: string };
  headers?: Record<string, string>;
  /** How the API says it refused the token besides HTTP 401 (the catalog's `api.rejected_token`). */
  rejected_token?: { status?: number[]; body_field?: string; body_values?: string[] };
  /** The catalog provider this was rendered for: a bounded label for the proxy's metrics and logs. */
  provider?: string;
  /** "credential": the credential's own `api_base_url`, kept as recorded (refreshes do not render it again). */
  source?: "credential";
}

const PLACEHOLDER = /\{([a-z][a-z0-9_]*)\}/g;
/** A metadata value that fills a host label: one DNS label (Mailchimp's `us6`). */
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const MAX_VALUE_LENGTH = 256;
/** Visible ASCII and spaces, as a header value must be. */
const HEADER_VALUE = /^[\x20-\x7e]{1,256}$/;

/** Why the broker may not call a URL, or undefined (the outbound policy's `refusal`). */
export type UrlRefusal = (url: URL) => string | undefined;

/**
 * The catalog's `api` rendered for one connection. `values` are the checked template parameters
 * (credential and connection level); `metadata` the connection's metadata, which came from the
 * provider and is untrusted: a value that stands for a whole URL (Salesforce's `{instance_url}`)
 * must be an https URL with nothing after its path that the outbound policy allows; one that fills
 * a host label must be a single DNS label; one in the path is one encoded segment. A base URL whose
 * values are missing or refused is left out; undefined when none is left.
 */
export function renderApi(
  spec: ApiSpec | undefined,
  values: Readonly<Record<string, string>>,
  metadata: Readonly<Record<string, string>>,
  refusal: UrlRefusal,
  providerId?: string,
): ConnectionApi | undefined {
  if (spec === undefined) return undefined;
  const baseUrls: ConnectionApi["base_urls"] = [];
  for (const base of spec.base_urls) {
    const url = renderBaseUrl(base.url, values, metadata, refusal);
    if (url !== undefined) baseUrls.push(base.description === undefined ? { name: base.name, url } : { name: base.name, url, description: base.description });
  }
  if (baseUrls.length === 0) return undefined;
  const token = spec.token ?? { in: "header", name: "Authorization" };
  const api: ConnectionApi = {
    base_urls: baseUrls,
    token: { in: token.in, name: token.name, scheme: token.in === "query" ? "" : (token.scheme ?? (token.name.toLowerCase() === "authorization" ? "Bearer" : "")) },
  };
  const headers = renderHeaders(spec.headers ?? {}, values, metadata);
  if (Object.keys(headers).length > 0) api.headers = headers;
  if (spec.rejected_token !== undefined) api.rejected_token = spec.rejected_token;
  if (providerId !== undefined) api.provider = providerId;
  return api;
}

/** Header values may name a value too (Xero's `xero-tenant-id: {tenant_id}`); one that cannot be filled is left out. */
function renderHeaders(
  templates: Readonly<Record<string, string>>,
  values: Readonly<Record<string, string>>,
  metadata: Readonly<Record<string, string>>,
): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, template] of Object.entries(templates)) {
    let failed = false;
    const value = template.replace(PLACEHOLDER, (_, key: string) => {
      const filled = values[key] ?? metadata[key];
      if (filled === undefined || !HEADER_VALUE.test(filled)) failed = true;
      return filled ?? "";
    });
    if (!failed) headers[name] = value;
  }
  return headers;
}

function renderBaseUrl(
  template: string,
  values: Readonly<Record<string, string>>,
  metadata: Readonly<Record<string, string>>,
  refusal: UrlRefusal,
): string | undefined {
  let rest = template;
  let origin = "";
  const leading = /^\{([a-z][a-z0-9_]*)\}/.exec(template);
  if (leading !== null) {
    // A metadata key standing for a whole URL: its origin (and path) replace the template's start.
    const whole = wholeUrl(metadata[leading[1]!], refusal);
    if (whole === undefined) return undefined;
    origin = whole;
    rest = template.slice(leading[0].length);
  }
  const authorityEnd = leading !== null ? 0 : template.indexOf("/", template.indexOf("//") + 2);
  const hostPart = leading !== null ? "" : rest.slice(0, authorityEnd === -1 ? rest.length : authorityEnd);
  const pathPart = leading !== null ? rest : rest.slice(hostPart.length);
  let failed = false;
  const fill = (text: string, inHost: boolean) =>
    text.replace(PLACEHOLDER, (_, name: string) => {
      const value = values[name] ?? metadata[name];
      if (value === undefined || value === "" || value.length > MAX_VALUE_LENGTH) {
        failed = true;
        return "";
      }
      // Template parameters were checked against their patterns; metadata came from the provider.
      if (inHost && values[name] === undefined && !LABEL.test(value)) failed = true;
      if (!inHost && (value === "." || value === "..")) failed = true;
      return inHost ? value.toLowerCase() : encodeURIComponent(value);
    });
  const rendered = `${origin}${fill(hostPart, true)}${fill(pathPart, false)}`;
  if (failed) return undefined;
  let url: URL;
  try {
    url = new URL(rendered);
  } catch {
    return undefined;
  }
  if (refusal(url) !== undefined || url.search !== "" || url.hash !== "") return undefined;
  return url.href.replace(/\/$/, "");
}

/** A provider-sent URL used as an API base: https (or as the outbound policy allows), nothing but a path. */
function wholeUrl(value: string | undefined, refusal: UrlRefusal): string | undefined {
  if (value === undefined || value.length > 2048) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "" || refusal(url) !== undefined) return undefined;
  return `${url.origin}${url.pathname}`.replace(/\/$/, "");
}
