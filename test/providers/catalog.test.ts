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
} from "../../src/providers/catalog.js";
import { renderEndpoint } from "../../src/providers/profile.js";
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

describe("the catalog loader refuses", () => {
  const docs = "https://example.com/docs";
  const base = (id: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    id,
    display_name: id,
    documentation_url: docs,
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
  ])("%s", (label, entries, message) => {
    const files: Record<string, string> = label.startsWith("an id") ? { "named.yaml": `id: other\ndisplay_name: x\ndocumentation_url: ${docs}\nendpoints: { authorize: "https://a.example.com/a", token: "https://a.example.com/t" }\nsources: { endpoints: "${docs}", authorize: "${docs}", token: "${docs}" }\n` } : {};
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
