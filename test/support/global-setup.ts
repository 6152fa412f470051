import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startEmbeddedFerretDb } from "../../src/store/embedded-ferretdb.js";

declare module "vitest" {
  export interface ProvidedContext {
    mongodbUri: string;
  }
}

/**
 * Starts one real FerretDB (building it into .tools/ on first use) for every test file, and
 * builds dist/ once for the tests that run the server as its own process.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const root = join(import.meta.dirname, "../..");
  execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
  const dir = mkdtempSync(join(tmpdir(), "oauth2-broker-test-"));
  const ferretdb = await startEmbeddedFerretDb(dir, 0);
  project.provide("mongodbUri", ferretdb.uri);
  return async () => {
    await ferretdb.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
