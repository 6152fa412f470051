import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");
const buf = join(root, "node_modules/.bin/buf");
const scratch = mkdtempSync(join(tmpdir(), "oauth2-broker-buf-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

describe("the protobuf contract", () => {
  it("passes buf lint", () => {
    expect(execFileSync(buf, ["lint"], { cwd: root, encoding: "utf8" })).toBe("");
  });

  it("has gen/ exactly as scripts/generate.sh writes it (TypeScript, Go, Python, OpenAPI)", () => {
    // Generate into a copy of the repository's inputs so the committed gen/ is left untouched.
    cpSync(join(root, "buf.yaml"), join(scratch, "buf.yaml"));
    cpSync(join(root, "proto"), join(scratch, "proto"), { recursive: true });
    execFileSync("bash", [join(root, "scripts/generate.sh"), scratch], { stdio: "inherit" });
    const expected = listFiles(join(scratch, "gen"));
    expect(listFiles(join(root, "gen"))).toEqual(expected);
    for (const file of expected) {
      expect(readFileSync(join(root, "gen", file), "utf8"), file).toBe(readFileSync(join(scratch, "gen", file), "utf8"));
    }
  }, 300_000);
});
