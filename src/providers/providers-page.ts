import type { CatalogCategory, CatalogEntry } from "./catalog.js";

/** Category headings of docs/providers.md, in page order. */
const CATEGORIES: ReadonlyArray<[CatalogCategory, string]> = [
  ["crm", "CRM and sales"],
  ["support", "Support and ticketing"],
  ["developer", "Developer tools and code hosting"],
  ["project", "Project and work management"],
  ["marketing", "Marketing and email"],
  ["finance", "Accounting, finance and payments"],
  ["hr", "HR and recruiting"],
  ["communication", "Communication, chat and video"],
  ["storage", "Storage and documents"],
  ["ecommerce", "E-commerce"],
  ["analytics", "Analytics and advertising"],
  ["identity", "Identity and single sign-on"],
  ["productivity", "Productivity"],
  ["social", "Social"],
  ["other", "Other"],
];

/**
 * docs/providers.md, generated from the catalog (`npm run providers-page`): one row per provider,
 * grouped by category. A test compares the file with this, so the page never drifts.
 */
export function renderProvidersPage(entries: readonly CatalogEntry[]): string {
  const lines = [
    "# Providers",
    "",
    "<!-- Generated from providers/*.yaml by `npm run providers-page`; do not edit by hand. -->",
    "",
    `${entries.length} providers in the catalog. Each fact comes from the provider's own documentation, cited in its`,
    "`providers/<id>.yaml` under `sources`. Name one in `Credential.provider`; README's \"Providers\" section explains",
    "the fields.",
    "",
  ];
  for (const [category, title] of CATEGORIES) {
    const group = entries.filter((entry) => entry.category === category).sort((a, b) => a.display_name.localeCompare(b.display_name, "en"));
    if (group.length === 0) continue;
    lines.push(`## ${title}`, "", "| Provider | Client authentication | Parameters | Offline access | Revocation | Quirks |", "|---|---|---|---|---|---|");
    for (const entry of group) {
      const cells = [
        `[${entry.display_name}](${entry.documentation_url}) (\`${entry.id}\`)`,
        clientAuthentication(entry),
        parameters(entry),
        offlineAccess(entry),
        revocation(entry),
        quirks(entry).join("; ") || "none",
      ];
      lines.push(`| ${cells.map(cell).join(" | ")} |`);
    }
    lines.push("");
  }
  return `${lines.join("\n").trimEnd()}\n`;
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

function clientAuthentication(entry: CatalogEntry): string {
  const token = entry.token ?? {};
  const method = token.auth_method ?? "client_secret_basic";
  const parts = [method === "client_secret_basic" ? `HTTP Basic${token.basic_encoding === "raw" ? " (raw)" : ""}` : "form fields"];
  if (token.client_id_param !== undefined) parts.push(`client ID as \`${token.client_id_param}\``);
  if (token.client_secret_param !== undefined) parts.push(`secret as \`${token.client_secret_param}\``);
  if (token.body_format === "json") parts.push("JSON body");
  return parts.join(", ");
}

function parameters(entry: CatalogEntry): string {
  const list = (entry.parameters ?? []).map(
    (parameter) => `\`${parameter.name}\` (${parameter.level}${parameter.default === undefined ? "" : `, default \`${parameter.default}\``})`,
  );
  return list.length === 0 ? "none" : list.join(", ");
}

function offlineAccess(entry: CatalogEntry): string {
  const offline = entry.authorize?.offline_access;
  if (offline === undefined || offline.method === "none") return "no request needed";
  if (offline.method === "scope") return `scope \`${offline.scope}\``;
  return Object.entries(offline.params ?? {}).map(([key, value]) => `\`${key}=${value}\``).join(", ");
}

function revocation(entry: CatalogEntry): string {
  const spec = entry.revocation;
  if (spec?.supported === false) return "not supported";
  if (spec === undefined) return entry.endpoints.revocation === undefined ? "not supported" : "RFC 7009";
  const token = spec.token === "access_token" ? "access token" : spec.token === "refresh_token" ? "refresh token" : "token";
  const where =
    spec.token_in === "bearer" ? `${token} as bearer` : spec.token_in === "none" ? "URL only" : `${token} in ${spec.token_in ?? "form"}${spec.token_param ? ` \`${spec.token_param}\`` : ""}`;
  const url = spec.url ?? entry.endpoints.revocation;
  const path = url === undefined ? "" : ` ${new URL(url.replace("{client_id}", "CLIENT_ID").replace(/\{[a-z_]+\}/g, "x")).pathname.replace("CLIENT_ID", "{client_id}")}`;
  return `${spec.method ?? "POST"}${path}, ${where}, client auth ${spec.client_auth ?? "as token endpoint"}`;
}

function quirks(entry: CatalogEntry): string[] {
  const token = entry.token ?? {};
  const found: string[] = [];
  if (token.response?.ok_field !== undefined) found.push(`errors with HTTP 200 (\`${token.response.ok_field}\` false)`);
  if (Object.values(token.response ?? {}).some((paths) => [paths].flat().some((path) => typeof path === "string" && path.includes(".")))) {
    found.push("nested token response");
  }
  if (token.default_token_type !== undefined) found.push(`token type defaults to ${token.default_token_type}`);
  if (token.default_expires_in !== undefined) found.push(`lifetime defaults to ${token.default_expires_in} s`);
  if (token.refresh_token_rotates === true) found.push("refresh tokens rotate");
  if (token.refresh_token_idle_lifetime !== undefined) found.push(`refresh token idle lifetime ${Math.round(token.refresh_token_idle_lifetime / 86400)} days`);
  const extra = Object.keys({ ...token.extra_params?.exchange, ...token.extra_params?.refresh });
  if (extra.length > 0) found.push(`extra token parameters ${extra.map((key) => `\`${key}\``).join(", ")}`);
  if (token.errors?.permanent !== undefined) found.push(`permanent errors ${token.errors.permanent.map((code) => `\`${code}\``).join(", ")}`);
  if (entry.authorize?.scope_separator !== undefined && entry.authorize.scope_separator !== " ") found.push(`scopes joined by \`${entry.authorize.scope_separator}\``);
  if (entry.authorize?.pkce === false) found.push("no PKCE");
  if (entry.metadata?.callback !== undefined) found.push(`callback metadata ${Object.keys(entry.metadata.callback).map((key) => `\`${key}\``).join(", ")}`);
  if (entry.metadata?.requests !== undefined) found.push(`metadata requests (${entry.metadata.requests.flatMap((r) => Object.keys(r.response)).map((key) => `\`${key}\``).join(", ")})`);
  const jwt = entry.grants?.jwt_bearer;
  if (jwt !== undefined) {
    found.push(`JWT bearer (iss \`${jwt.issuer}\`, aud ${jwt.audience.replaceAll("_", " ")}, scope ${jwt.scope === "none" ? "from the app" : `as ${jwt.scope}`}, sub ${jwt.subject}, exp ≤ ${jwt.max_lifetime} s)`);
  }
  const api = entry.api;
  if (api !== undefined) {
    found.push(`API ${api.base_urls.map((base) => `\`${base.url}\``).join(", ")}`);
    if (api.token !== undefined && !(api.token.in === "header" && api.token.name.toLowerCase() === "authorization" && (api.token.scheme ?? "Bearer") === "Bearer")) {
      found.push(`token in ${api.token.in} \`${api.token.name}\`${api.token.scheme ? ` (${api.token.scheme})` : ""}`);
    }
    if (api.headers !== undefined) found.push(`API headers ${Object.keys(api.headers).map((key) => `\`${key}\``).join(", ")}`);
  }
  return found;
}
