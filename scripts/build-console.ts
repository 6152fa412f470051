import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { findRoot } from "../src/store/embedded-ferretdb.js";

/**
 * Builds the operator console into dist/console: one bundled, minified script and one stylesheet,
 * served by the gateway from its own origin (the CSP allows nothing else).
 */
export async function buildConsole(root = findRoot(import.meta.dirname)): Promise<void> {
  const out = join(root, "dist", "console");
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, "assets"), { recursive: true });
  await build({
    entryPoints: [join(root, "console", "src", "main.tsx")],
    outfile: join(out, "assets", "app.js"),
    bundle: true,
    format: "esm",
    minify: true,
    target: "es2022",
    jsx: "automatic",
    jsxImportSource: "preact",
    tsconfig: join(root, "console", "tsconfig.json"),
    logLevel: "warning",
    legalComments: "none",
  });
  copyFileSync(join(root, "console", "app.css"), join(out, "assets", "app.css"));
  copyFileSync(join(root, "console", "index.html"), join(out, "index.html"));
}

if (import.meta.url === `file://${process.argv[1]}`) await buildConsole();
