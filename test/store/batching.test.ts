import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createLogger } from "../../src/logger.js";
import { ApiKeyStore, apiKeyIndexes } from "../../src/store/api-keys.js";
import { type CredentialDocument, CredentialStore } from "../../src/store/credentials.js";
import { Batcher } from "../../src/store/batcher.js";
import { connectDatabase, type Database, ensureIndexes, isDatabaseUnavailable } from "../../src/store/database.js";

// Grouped lookups in the stores every call goes through, against FerretDB (state inserts: oauth-states.test.ts).
let database: Database;
const commands: string[] = [];

beforeAll(async () => {
  database = await connectDatabase(inject("mongodbUri"), `test_${randomUUID().replaceAll("-", "")}`, (command, collection) =>
    commands.push(`${command} ${collection}`),
  );
});
afterAll(async () => {
  database.stopSweepers();
  await database.client.close();
});

function count(command: string): number {
  return commands.filter((c) => c === command).length;
}

function credential(id: string, organisationId: string): CredentialDocument {
  const now = new Date();
  return {
    _id: id,
    organisation_id: organisationId,
    name: id,
    client_id: `client-of-${id}`,
    client_secret: "ciphertext",
    token_url: "https://idp.example/token",
    token_endpoint_auth_method: "client_secret_basic",
    disable_pkce: false,
    authorization_response_iss_parameter_supported: false,
    create_time: now,
    update_time: now,
  };
}

describe("CredentialStore.findById", () => {
  it("answers concurrent reads with fewer finds, each only with its own organisation's credential", async () => {
    const credentials = new CredentialStore(database.db);
    await credentials.insert(credential("cred-a", "acme"));
    await credentials.insert(credential("cred-b", "globex"));
    const before = count("find credentials");
    const reads = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        i % 3 === 0 ? credentials.findById("acme", "cred-a") : i % 3 === 1 ? credentials.findById("globex", "cred-b") : credentials.findById("acme", "cred-b"),
      ),
    );
    expect(reads.map((r) => r?._id ?? null)).toEqual(Array.from({ length: 30 }, (_, i) => [("cred-a"), "cred-b", null][i % 3]));
    expect(count("find credentials") - before).toBeLessThan(30);
    // Each caller has a copy of its own: changing one changes no other.
    reads[0]!.client_id = "changed by one caller";
    expect(reads[3]!.client_id).toBe("client-of-cred-a");
  });

  it("sees an update that finished before the read began, even while other reads are in flight", async () => {
    const credentials = new CredentialStore(database.db);
    await credentials.insert(credential("cred-fresh", "acme"));
    for (let round = 0; round < 20; round++) {
      const inFlight = Array.from({ length: 5 }, () => credentials.findById("acme", "cred-fresh"));
      await credentials.update("acme", "cred-fresh", { client_id: `client-${round}` }, []);
      expect((await credentials.findById("acme", "cred-fresh"))?.client_id, `round ${round}`).toBe(`client-${round}`);
      await Promise.all(inFlight);
    }
  });
});

describe("ApiKeyStore.findByHash", () => {
  it("answers concurrent lookups of different keys, and null for an unknown one", async () => {
    const keys = new ApiKeyStore(database.db);
    await ensureIndexes(database, keys.collection, apiKeyIndexes, createLogger("silent"));
    for (const n of [1, 2]) {
      await keys.insert({ _id: `key-${n}`, key_hash: `hash-${n}`, prefix: `obk_${n}`, name: `k${n}`, admin: false, organisation_id: "acme", create_time: new Date() });
    }
    const found = await Promise.all(["hash-1", "hash-2", "hash-unknown", "hash-1"].map((hash) => keys.findByHash(hash)));
    expect(found.map((k) => k?._id ?? null)).toEqual(["key-1", "key-2", null, "key-1"]);
  });
});

describe("Batcher", () => {
  // Regression: after a database restart under CPU load one command never returned, and every
  // later Initialise queued behind its batch for good (test/store/database-outage.test.ts).
  it("fails a batch that does not return in time as the database being unavailable, and sends the next", async () => {
    const sent: string[][] = [];
    const batcher = new Batcher<string, string>(
      (inputs) => {
        sent.push(inputs);
        // The first command never returns; later ones answer at once.
        return sent.length === 1 ? new Promise(() => {}) : Promise.resolve(inputs.map((input) => `done ${input}`));
      },
      { maxBatch: 10, maxConcurrent: 1, timeoutMs: 200 },
    );
    const stuck = batcher.call("a");
    const queued = batcher.call("b");
    const error = await stuck.catch((e: unknown) => e);
    expect(isDatabaseUnavailable(error)).toBe(true);
    expect((error as Error).message).toBe("a database command did not return within 200 ms");
    expect(await queued).toBe("done b");
    expect(await batcher.call("c")).toBe("done c");
    expect(sent).toEqual([["a"], ["b"], ["c"]]);
  });
});
