import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadProviderCatalog } from "../src/providers/catalog.js";
import { renderProvidersPage } from "../src/providers/providers-page.js";
import { findRoot } from "../src/store/embedded-ferretdb.js";

/**
 * `npm run providers-page`: writes docs/providers.md from the catalog (the same loader and checks
 * as the broker's start-up). test/providers/providers-page.test.ts fails while the two differ.
 */
const root = findRoot(import.meta.dirname);
const page = renderProvidersPage(loadProviderCatalog(root, undefined).list());
writeFileSync(join(root, "docs", "providers.md"), page);
console.log(`docs/providers.md: ${page.split("\n").filter((line) => line.startsWith("| [")).length} providers`);
