import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { generateEncryptionKey, parseEncryptionKeys, SecretBox } from "../../src/crypto/secret-box.js";
import { createLogger } from "../../src/logger.js";
import { connectDatabase, type Database, ensureIndexes } from "../../src/store/database.js";
import { type OAuthStateDocument, OAuthStateStore, oauthStateIndexes, ROTATE_AFTER } from "../../src/store/oauth-states.js";

// Regression (issue 13): consuming a state was a delete in one collection holding every pending
// state, and FerretDB's deletes read the whole collection: 35 times slower with ~21 600 pending.
const PENDING = 20_000;

let database: Database;
let states: OAuthStateStore;
const commands: string[] = [];

beforeAll(async () => {
  database = await connectDatabase(inject("mongodbUri"), `test_${randomUUID().replaceAll("-", "")}`, (command, collection) =>
    commands.push(`${command} ${collection}`),
  );
  states = new OAuthStateStore(database.db);
  // No periodic sweep during the test: its delete would show up among the commands counted below.
  await ensureIndexes(database, states.collection, oauthStateIndexes, createLogger("silent"), 3_600_000);
});
afterAll(async () => {
  database.stopSweepers();
  await database.client.close();
});

function attempt(id: string, expiresInMs = 600_000): OAuthStateDocument {
  const now = Date.now();
  return {
    _id: id,
    organisation_id: "acme",
    connector_id: "c",
    credential_id: "cred",
    client_id: "client",
    redirect_uri: "http://127.0.0.1/oauth2/callback",
    scopes: [],
    create_time: new Date(now),
    expire_time: new Date(now + expiresInMs),
  };
}

/** Runs maintenance as if `aheadMs` had passed, so moved generations are copied and dropped now. */
const maintainAhead = (aheadMs: number) => states.maintain(new Date(Date.now() + aheadMs));

describe(`OAuthStateStore with ${PENDING} pending states`, () => {
  it("keeps every pending state consumable once, while the collection requests delete from stays small", { timeout: 120_000 }, async () => {
    // Inserted through the store's own (grouped) insert path, with maintenance after each
    // generation as the broker's worker runs it when an instance filled one.
    for (let i = 0; i < PENDING; i += ROTATE_AFTER) {
      await Promise.all(Array.from({ length: ROTATE_AFTER }, (_, j) => states.insert(attempt(`pending-${i + j}`))));
      await states.maintain();
    }
    await maintainAhead(31_000);
    const names = (await database.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
    expect(names.filter((name) => name.startsWith("oauth_states_moving_"))).toEqual([]);
    expect(await states.collection.countDocuments()).toBeLessThan(ROTATE_AFTER);

    // A fresh state (current generation) and an early one (copied to its bucket), each raced.
    await states.insert(attempt("fresh"));
    for (const id of ["fresh", "pending-7", `pending-${PENDING - 1}`]) {
      const results = await Promise.all(Array.from({ length: 10 }, () => states.consumeByHash(id)));
      expect(results.filter((r) => r !== null), id).toHaveLength(1);
      expect(results.find((r) => r !== null)).toMatchObject({ _id: id, organisation_id: "acme", client_id: "client" });
      expect(await states.consumeByHash(id), `${id} replayed`).toBeNull();
    }

    // What a callback sends: finds by _id, one marker insert, and a delete only in the small current generation.
    commands.length = 0;
    expect((await states.consumeByHash("pending-1234"))?._id).toBe("pending-1234");
    expect(commands.filter((c) => c.startsWith("delete"))).toEqual([]);
    await states.insert(attempt("fresh-2"));
    commands.length = 0;
    expect((await states.consumeByHash("fresh-2"))?._id).toBe("fresh-2");
    expect(commands).toEqual(["find oauth_states", expect.stringMatching(/^insert oauth_states_until_\d+_p\d+$/), "delete oauth_states"]);
  });

  it("re-encrypts the verifiers of states in the current generation and in buckets alike", async () => {
    const [oldKey, newKey] = [generateEncryptionKey("old"), generateEncryptionKey("new")];
    const before = new SecretBox(parseEncryptionKeys(oldKey));
    const context = (hash: string) => `oauth_states/${hash}/code_verifier`;
    const sealed = (id: string) => ({ ...attempt(id), code_verifier: before.encrypt(`verifier-${id}`, context(id)) });
    // A whole generation, so it rotates; only a few with verifiers (each re-encryption is an update).
    await Promise.all(Array.from({ length: ROTATE_AFTER }, (_, i) => states.insert(i < 3 ? sealed(`sealed-${i}`) : attempt(`plain-${i}`))));
    await states.maintain();
    await maintainAhead(31_000);
    await states.insert(sealed("sealed-current"));
    const after = new SecretBox(parseEncryptionKeys(`${newKey},${oldKey}`));
    const moved = await states.reencrypt(after, context);
    expect(moved).toBe(4);
    expect(await states.collection.countDocuments({ _id: "sealed-0" })).toBe(0);
    for (const id of ["sealed-0", "sealed-2", "sealed-current"]) {
      const document = await states.consumeByHash(id);
      expect(document?.code_verifier?.startsWith("new.")).toBe(true);
      expect(after.decrypt(document!.code_verifier!, context(id))).toBe(`verifier-${id}`);
    }
  });

  it("drops whole buckets once every state in them has expired, and none comes back", async () => {
    const before = (await database.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
    expect(before.some((name) => name.startsWith("oauth_states_until_"))).toBe(true);
    await maintainAhead(2 * 3_600_000);
    const after = (await database.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
    expect(after.filter((name) => name.startsWith("oauth_states_until_"))).toEqual([]);
    expect(await states.consumeByHash("pending-100")).toBeNull();
  });
});
