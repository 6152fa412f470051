import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { inject } from "vitest";

/**
 * The whole run's record, for the leak check in the global teardown: every log line any broker
 * wrote, and every secret the run used (client secrets, codes, states, verifiers, tokens, keys).
 */
function runFile(name: string): string {
  return join(inject("runDir"), name);
}

export function recordSecrets(...values: Array<string | null | undefined>): void {
  const secrets = values.filter((value): value is string => typeof value === "string" && value.length >= 8);
  if (secrets.length > 0) appendFileSync(runFile("secrets.txt"), secrets.map((s) => `${JSON.stringify(s)}\n`).join(""));
}

export function recordLogLines(text: string): void {
  const lines = text.split("\n").filter((line) => line.startsWith("{"));
  if (lines.length > 0) appendFileSync(runFile("logs.jsonl"), `${lines.join("\n")}\n`);
}
