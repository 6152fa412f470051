import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadProviderCatalog } from "../../src/providers/catalog.js";
import { renderProvidersPage } from "../../src/providers/providers-page.js";
import { findRoot } from "../../src/store/embedded-ferretdb.js";

const root = findRoot(import.meta.dirname);

describe("docs/providers.md", () => {
  it("is the catalog's page (run `npm run providers-page` after changing providers/)", () => {
    const entries = loadProviderCatalog(root, undefined).list();
    const page = readFileSync(join(root, "docs", "providers.md"), "utf8");
    expect(page).toBe(renderProvidersPage(entries));
    // One row per provider, under its category.
    expect(page.split("\n").filter((line) => line.startsWith("| ["))).toHaveLength(entries.length);
    for (const entry of entries) expect(page).toContain(`(\`${entry.id}\`)`);
  });
});
