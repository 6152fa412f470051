import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/errors.js";
import {
  CatalogError,
  type CatalogEntry,
  catalogProblems,
  HOSTILE_VALUES,
  loadProviderCatalog,
  ProviderCatalog,
  unfixedDot,
} from "../../src/providers/catalog.js";
import { buildProviderProfile, renderEndpoint } from "../../src/providers/profile.js";
import { findRoot } from "../../src/store/embedded-ferretdb.js";
import { scriptedCatalogEntries, writeCatalog } from "../support/test-catalog.js";

const root = findRoot(import.meta.dirname);
const schema = join(root, "src", "providers", "catalog.schema.json");
// BROKER_PROVIDERS_DIR lets the same lint run over a catalog being written elsewhere.
const dir = process.env.BROKER_PROVIDERS_DIR ?? join(root, "providers");
const catalog = loadProviderCatalog(root, dir);
const entries = catalog.list();

/** The host part of a template after its first placeholder label: the fixed domain. */
function fixedDomain(template: string): string | undefined {
  const host = /^https?:\/\/([^/?#]+)/.exec(template)?.[1] ?? "";
  return host.startsWith("{") ? host.slice(host.indexOf(".") + 1) : undefined;
}

describe("the provider catalog (providers/*.yaml)", () => {
  it("loads: every entry matches the schema and the catalog rules, one file per id", () => {
    const files = readdirSync(dir).filter((name) => name.endsWith(".yaml"));
    expect(entries.map((entry) => `${entry.id}.yaml`).sort()).toEqual(files.sort());
    expect(new Set(entries.map((entry) => entry.id)).size).toBe(entries.length);
    expect(catalogProblems(entries)).toEqual([]);
  });

  it.each(entries.map((entry) => [entry.id, entry] as const))("%s is documented: sources for each section, every URL https", (_id, entry) => {
    for (const section of ["endpoints", "authorize", "token", ...(["parameters", "metadata", "identity"] as const).filter((s) => entry[s] !== undefined)]) {
      expect(Object.keys(entry.sources).some((key) => key === section || key.startsWith(`${section}.`)), `sources.${section}`).toBe(true);
    }
    const urls = [entry.documentation_url, ...Object.values(entry.endpoints), ...Object.values(entry.sources)];
    for (const url of urls) expect(new URL(url.replace(/\{[a-z_]+\}/g, "x")).protocol, url).toBe("https:");
  });

  it.each(entries.map((entry) => [entry.id, entry] as const))("%s: every template parameter has an anchored pattern and is used", (_id, entry) => {
    const templates = Object.values(entry.endpoints).join(" ");
    for (const parameter of entry.parameters ?? []) {
      expect(parameter.pattern).toMatch(/^\^.*\$$/);
      expect(templates).toContain(`{${parameter.name}}`);
    }
    for (const [, name] of templates.matchAll(/\{([a-z_]+)\}/g)) expect((entry.parameters ?? []).map((p) => p.name)).toContain(name);
  });

  it.each(entries.map((entry) => [entry.id, entry] as const))("%s: hostile connection values cannot leave the fixed domain", (_id, entry) => {
    for (const parameter of (entry.parameters ?? []).filter((p) => p.level === "connection")) {
      for (const template of Object.values(entry.endpoints).filter((t) => t.includes(`{${parameter.name}}`))) {
        const domain = fixedDomain(template);
        const values = Object.fromEntries((entry.parameters ?? []).map((p) => [p.name, "acme"]));
        for (const hostile of [...HOSTILE_VALUES.host, ...HOSTILE_VALUES.path]) {
          // Either the pattern refuses the value, or the rendered URL stays under the fixed domain.
          if (!new RegExp(parameter.pattern, "u").test(hostile)) continue;
          let host: string | undefined;
          try {
            host = new URL(renderEndpoint(template, { ...values, [parameter.name]: hostile }, entry.parameters ?? [])).hostname;
          } catch (error) {
            expect(error).toBeInstanceOf(InvalidInputError);
            continue;
          }
          if (domain !== undefined) expect(host.endsWith(`.${domain}`), `${template} with ${hostile}`).toBe(true);
          else expect(host).toBe(new URL(template.replace(/\{[a-z_]+\}/g, "acme")).hostname);
        }
      }
    }
  });

  it("keeps metadata keys snake_case and never names a token", () => {
    for (const entry of entries) {
      for (const [key, path] of [...Object.entries(entry.metadata?.response ?? {}), ...Object.entries(entry.metadata?.callback ?? {})]) {
        expect(key).toMatch(/^[a-z][a-z0-9]*(_[a-z0-9]+)*$/);
        expect(`${key} ${path}`).not.toMatch(/token|secret/i);
      }
    }
  });
});

describe("Salesforce's login hosts (My Domain)", () => {
  const salesforce = catalog.get("salesforce")!;
  const tokenUrl = (connectionConfig: Record<string, string>) =>
    buildProviderProfile({ provider: "salesforce" }, salesforce, connectionConfig).tokenUrl;

  it.each<[string, Record<string, string>, string]>([
    ["production (the default, left out)", {}, "https://login.salesforce.com/services/oauth2/token"],
    ["production", { login_subdomain: "login" }, "https://login.salesforce.com/services/oauth2/token"],
    ["sandbox", { login_subdomain: "test" }, "https://test.salesforce.com/services/oauth2/token"],
    ["a production My Domain", { login_subdomain: "acme.my" }, "https://acme.my.salesforce.com/services/oauth2/token"],
    ["a sandbox My Domain", { login_subdomain: "acme--dev.sandbox.my" }, "https://acme--dev.sandbox.my.salesforce.com/services/oauth2/token"],
  ])("%s renders a working URL", (_label, connectionConfig, url) => {
    expect(tokenUrl(connectionConfig)).toBe(url);
    const profile = buildProviderProfile({ provider: "salesforce" }, salesforce, connectionConfig);
    expect(new URL(profile.authorizeUrl!).hostname).toBe(new URL(url).hostname);
    // The default is kept on the connection like a value given, so refresh reaches the same host.
    expect(profile.connectionConfig.login_subdomain).toBe(connectionConfig.login_subdomain ?? "login");
  });

  it.each(["acme.evil.my", "acme.my.evil.com", "acme--dev.evil.sandbox.my", "acme.sandbox.my", "evil.com/x.my", "acme@evil.my"])(
    "refuses %s, naming the field",
    (value) => {
      const refused = () => tokenUrl({ login_subdomain: value });
      expect(refused).toThrow(InvalidInputError);
      expect(refused).toThrow('"connection_config.login_subdomain" does not match the pattern of provider "salesforce" (see GetProvider)');
    },
  );
});

describe("unfixedDot: a host parameter may hold a dot only where its pattern fixes the label after it", () => {
  it.each([
    ["^(login|test|[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}[A-Za-z0-9])?(?:--[A-Za-z0-9]{1,40}\\.sandbox)?\\.my)$", undefined],
    ["^[a-z0-9][a-z0-9-]{0,62}$", undefined],
    ["^[a-z0-9.-]+$", "a dot in a character class"],
    ["^[a-z]+.my$", "an unescaped dot"],
    ["^[a-z]+(\\.[a-z]+)?\\.my$", "a dot not followed by a fixed label"],
    ["^[a-z]+(\\.my)+$", "a repeated group with a dot"],
    ["^[a-z]+\\.my[a-z]*$", "a fixed label followed by more pattern"],
    ["^[a-z]+[\\.]my$", "an escaped dot in a character class"],
  ])("%s: %s", (pattern, problem) => {
    expect(unfixedDot(pattern)).toBe(problem);
  });
});

describe("the catalog loader refuses", () => {
  const docs = "https://example.com/docs";
  const base = (id: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    id,
    display_name: id,
    documentation_url: docs,
    category: "other",
    endpoints: { authorize: "https://auth.example.com/authorize", token: "https://auth.example.com/token" },
    sources: { endpoints: docs, authorize: docs, token: docs },
    ...extra,
  });
  const shop = { name: "shop", level: "connection", pattern: "^[a-z0-9][a-z0-9-]{0,62}$", description: "The shop" };
  const load = (entries: Array<Record<string, unknown>>, files?: Record<string, string>) => () =>
    ProviderCatalog.load(writeCatalog(entries, files), schema);

  it.each<[string, Array<Record<string, unknown>>, string]>([
    ["an id that is not the file name", [], 'id "other" must equal the file name "named"'],
    ["a plain http endpoint", [base("plain", { endpoints: { authorize: "http://auth.example.com/a", token: "https://auth.example.com/t" } })], "must be an https URL"],
    [
      "a template whose connection parameter is the whole host",
      [base("whole", { parameters: [shop], endpoints: { authorize: "https://{shop}/a", token: "https://{shop}/t" }, sources: { endpoints: docs, authorize: docs, token: docs, parameters: docs } })],
      'connection parameter "shop" may only fill the first label of a host under a fixed domain',
    ],
    [
      "a template whose fixed domain is a bare TLD",
      [base("tld", { parameters: [shop], endpoints: { authorize: "https://{shop}.com/a", token: "https://{shop}.com/t" }, sources: { endpoints: docs, authorize: docs, token: docs, parameters: docs } })],
      "may only fill the first label of a host under a fixed domain",
    ],
    [
      "a pattern that accepts a host-changing value",
      [base("loose", { parameters: [{ ...shop, pattern: "^[a-z.]+$" }], endpoints: { authorize: "https://{shop}.myshopify.com/a", token: "https://{shop}.myshopify.com/t" }, sources: { endpoints: docs, authorize: docs, token: docs, parameters: docs } })],
      'parameter "shop" pattern accepts the hostile value "acme.evil.com"',
    ],
    [
      "an unanchored pattern",
      [base("unanchored", { parameters: [{ ...shop, pattern: "[a-z]+" }], endpoints: { authorize: "https://{shop}.myshopify.com/a", token: "https://{shop}.myshopify.com/t" }, sources: { endpoints: docs, authorize: docs, token: docs, parameters: docs } })],
      "does not match the catalog schema: /parameters/0/pattern must match pattern",
    ],
    [
      "an unused parameter",
      [base("unused", { parameters: [shop], sources: { endpoints: docs, authorize: docs, token: docs, parameters: docs } })],
      'parameter "shop" is not used by any endpoint',
    ],
    ["a placeholder that is not a parameter", [base("undeclared", { endpoints: { authorize: "https://{shop}.myshopify.com/a", token: "https://auth.example.com/t" } })], 'uses "{shop}" which is not a parameter'],
    ["a section without its source", [base("unsourced", { metadata: { response: { instance_url: "instance_url" } } })], 'sources must name the document for "metadata"'],
    ["metadata that names a token", [base("leaky", { metadata: { response: { user_token: "authed_user.access_token" } }, sources: { endpoints: docs, authorize: docs, token: docs, metadata: docs } })], "must not name a secret"],
    ["a default parameter the broker owns", [base("owned", { authorize: { default_params: { redirect_uri: "https://evil.example" } } })], 'authorize.default_params must not set "redirect_uri"'],
    ["an unknown key (a typo)", [base("typo", { endpoint: {} })], "must NOT have additional properties"],
    // Issue 20, item 7: a value from the callback query is whatever the browser sent.
    [
      "a callback value without a pattern",
      [base("unchecked", { metadata: { callback: { realm_id: "realmId" } }, sources: { endpoints: docs, authorize: docs, token: docs, metadata: docs } })],
      "metadata.callback.realm_id needs a pattern in metadata.callback_patterns",
    ],
    [
      "a callback pattern for no callback key",
      [base("stray", { metadata: { callback: { realm_id: "realmId" }, callback_patterns: { realm_id: "^[0-9]+$", company: "^[0-9]+$" } }, sources: { endpoints: docs, authorize: docs, token: docs, metadata: docs } })],
      "metadata.callback_patterns.company is not a metadata.callback key",
    ],
    [
      "an expected callback value over no connection parameter",
      [base("unbound", { metadata: { callback: { shop_domain: "shop" }, callback_patterns: { shop_domain: "^[a-z.]+$" }, callback_equals: { shop_domain: "{shop}.myshopify.com" } }, sources: { endpoints: docs, authorize: docs, token: docs, metadata: docs } })],
      'metadata.callback_equals.shop_domain uses "{shop}" which is not a connection parameter',
    ],
    [
      "a connection pattern that lets a bidi control through into metadata",
      [base("bidi", { parameters: [{ ...shop, pattern: "^[^./?#@:\\\\%\\s]+$" }], endpoints: { authorize: "https://{shop}.myshopify.com/a", token: "https://{shop}.myshopify.com/t" }, sources: { endpoints: docs, authorize: docs, token: docs, parameters: docs } })],
      'parameter "shop" pattern accepts the hostile value "a\u202eb"',
    ],
    [
      "an API base with a placeholder that is neither a parameter nor a metadata key",
      [base("apiunknown", { api: { base_urls: [{ name: "rest", url: "https://{dc}.api.example.com/3.0" }] }, sources: { endpoints: docs, authorize: docs, token: docs, api: docs } })],
      'api.base_urls[0].url uses "{dc}" which is neither a parameter nor a metadata key',
    ],
    [
      "an API base whose metadata label is not the first label under a fixed domain",
      [base("apilabel", { metadata: { response: { dc: "dc" } }, api: { base_urls: [{ name: "rest", url: "https://api.{dc}.com/3.0" }] }, sources: { endpoints: docs, authorize: docs, token: docs, api: docs, metadata: docs } })],
      'api.base_urls[0].url "{dc}" may only fill the first label of a host under a fixed domain',
    ],
    [
      "a revocation whose token and client both want the Authorization header",
      [base("revboth", { endpoints: { authorize: "https://auth.example.com/a", token: "https://auth.example.com/t", revocation: "https://auth.example.com/r" }, revocation: { supported: true, token_in: "bearer", client_auth: "basic" }, sources: { endpoints: docs, authorize: docs, token: docs, revocation: docs } })],
      "revocation.token_in bearer and client_auth basic would both need the Authorization header",
    ],
    [
      "a revocation URL with a placeholder that is not a parameter or {client_id}",
      [base("revurl", { revocation: { supported: true, method: "DELETE", url: "https://api.example.com/applications/{app}/grant" }, sources: { endpoints: docs, authorize: docs, token: docs, revocation: docs } })],
      'revocation.url uses "{app}" which is not a parameter',
    ],
    [
      "a metadata request that names a secret",
      [base("reqsecret", { metadata: { requests: [{ url: "https://api.example.com/me", response: { refresh: "refresh_token" } }] }, sources: { endpoints: docs, authorize: docs, token: docs, metadata: docs } })],
      'metadata.requests[0].response.refresh must not name a secret ("refresh_token")',
    ],
    [
      "a default that fails its pattern",
      [base("baddefault", { parameters: [{ ...shop, default: "Acme Shop" }], endpoints: { authorize: "https://{shop}.myshopify.com/a", token: "https://{shop}.myshopify.com/t" }, sources: { endpoints: docs, authorize: docs, token: docs, parameters: docs } })],
      'parameter "shop" default does not match its pattern',
    ],
    [
      "a host parameter whose dots are the caller's",
      [base("dotted", { parameters: [{ ...shop, pattern: "^[a-z0-9]+(\\.[a-z0-9]+)?\\.my$" }], endpoints: { authorize: "https://{shop}.example.com/a", token: "https://{shop}.example.com/t" }, sources: { endpoints: docs, authorize: docs, token: docs, parameters: docs } })],
      'parameter "shop" pattern may hold a dot only before a fixed label (a dot not followed by a fixed label)',
    ],
  ])("%s", (label, entries, message) => {
    const files: Record<string, string> = label.startsWith("an id") ? { "named.yaml": `id: other\ndisplay_name: x\ncategory: other\ndocumentation_url: ${docs}\nendpoints: { authorize: "https://a.example.com/a", token: "https://a.example.com/t" }\nsources: { endpoints: "${docs}", authorize: "${docs}", token: "${docs}" }\n` } : {};
    expect(load(entries, files)).toThrow(CatalogError);
    expect(load(entries, files)).toThrow(message);
  });

  it("duplicate ids and one metadata key with two meanings", () => {
    const a = base("a", { metadata: { response: { team_id: "team.id" } }, sources: { endpoints: docs, authorize: docs, token: docs, metadata: docs } }) as unknown as CatalogEntry;
    const b = base("b", { metadata: { response: { team_id: "organisation.id" } }, sources: { endpoints: docs, authorize: docs, token: docs, metadata: docs } }) as unknown as CatalogEntry;
    const c = base("c", { metadata: { response: { team_id: "team_id" } }, sources: { endpoints: docs, authorize: docs, token: docs, metadata: docs } }) as unknown as CatalogEntry;
    expect(catalogProblems([a, a])).toEqual(['duplicate id "a"']);
    expect(catalogProblems([a, c])).toEqual([]);
    expect(catalogProblems([a, b])).toEqual(['metadata key "team_id" comes from "organisation.id" in "b" but from "team.id" in "a"']);
  });

  it("accepts the scripted test catalog (http only on loopback)", () => {
    const loaded = ProviderCatalog.load(writeCatalog(scriptedCatalogEntries("http://127.0.0.1:1")), schema);
    expect(loaded.list().map((entry) => entry.id)).toContain("scripted-tenant");
  });
});
