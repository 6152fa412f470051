import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startEmbeddedFerretDb } from "../../src/store/embedded-ferretdb.js";
import { buildConsole } from "../../scripts/build-console.js";

declare module "vitest" {
  export interface ProvidedContext {
    mongodbUri: string;
    /** Where the run's log lines and used secrets are recorded (test/support/run-record.ts). */
    runDir: string;
  }
}

/**
 * Starts one real FerretDB (building it into .tools/ on first use) for every test file, and
 * builds dist/ (and the operator console) once for the tests that run the server as its own process.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const root = join(import.meta.dirname, "../..");
  execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
  // The operator console the gateway serves, built as `npm run build` builds it.
  await buildConsole(root);
  const dir = mkdtempSync(join(tmpdir(), "oauth2-broker-test-"));
  const ferretdb = await startEmbeddedFerretDb(dir);
  project.provide("mongodbUri", ferretdb.uri);
  const runDir = mkdtempSync(join(tmpdir(), "oauth2-broker-run-"));
  project.provide("runDir", runDir);
  return async () => {
    await ferretdb.stop();
    rmSync(dir, { recursive: true, force: true });
    try {
      checkLogsForSecrets(runDir);
    } catch (error) {
      // Vitest reports a teardown error but still exits 0: make the run fail.
      process.exitCode = 1;
      throw error;
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
  };
}

/**
 * No secret the run used may appear in any log line any broker wrote. Fails the run otherwise,
 * naming only how many leaked (printing them would leak them again).
 */
function checkLogsForSecrets(runDir: string): void {
  const read = (name: string) => (existsSync(join(runDir, name)) ? readFileSync(join(runDir, name), "utf8") : "");
  const logs = read("logs.jsonl");
  const secrets = [...new Set(read("secrets.txt").split("\n").filter(Boolean).map((line) => JSON.parse(line) as string))];
  const leaked = secrets.filter((secret) => logs.includes(secret));
  const lines = logs.split("\n").filter(Boolean).length;
  console.log(`log check: ${secrets.length} secrets used, ${lines} log lines written, ${leaked.length} found in the logs`);
  if (leaked.length > 0) throw new Error(`log check: ${leaked.length} secrets appear in the logs`);
}
