import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { generateEncryptionKey, parseEncryptionKeys, SecretBox } from "../../src/crypto/secret-box.js";
import { STATE_WINDOW_SECONDS, stateWindowAt } from "../../src/oauth/state.js";
import { connectDatabase, type Database } from "../../src/store/database.js";
import { type OAuthStateDocument, OAuthStateStore } from "../../src/store/oauth-states.js";

// Regression (issue 13): consuming a state was a delete in one collection holding every pending
// state, and FerretDB's deletes read the whole collection: 35 times slower with ~21 600 pending.
const PENDING = 20_000;
/** The pending states were created over this span, as a steady rate of Initialise calls leaves them. */
const SPAN_MS = 500_000;

let database: Database;
let states: OAuthStateStore;
const commands: string[] = [];

beforeAll(async () => {
  database = await connectDatabase(inject("mongodbUri"), `test_${randomUUID().replaceAll("-", "")}`, (command, collection) =>
    commands.push(`${command} ${collection}`),
  );
  states = new OAuthStateStore(database.db);
});
afterAll(async () => {
  database.stopSweepers();
  await database.client.close();
});

function attempt(id: string, createdAgoMs = 0, expiresInMs = 600_000, now = Date.now()): OAuthStateDocument {
  return {
    _id: id,
    organisation_id: "acme",
    connector_id: "c",
    credential_id: "cred",
    client_id: "client",
    redirect_uri: "http://127.0.0.1/oauth2/callback",
    scopes: [],
    create_time: new Date(now - createdAgoMs),
    expire_time: new Date(now - createdAgoMs + expiresInMs),
  };
}
const windowOf = (document: OAuthStateDocument) => stateWindowAt(document.create_time);
const collectionNames = async () => (await database.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);

describe(`OAuthStateStore with ${PENDING} pending states`, () => {
  const documents = new Map<string, OAuthStateDocument>();

  it("keeps every pending state consumable once, while a callback reads one window's collection", { timeout: 120_000 }, async () => {
    // Inserted through the store's own (grouped) insert path, created over the SPAN_MS before the
    // test began (one clock reading, so a slow machine does not crowd more states into a window).
    const start = Date.now();
    for (let i = 0; i < PENDING; i += 500) {
      const batch = Array.from({ length: 500 }, (_, j) => attempt(`pending-${i + j}`, ((i + j) / PENDING) * SPAN_MS, 600_000, start));
      for (const document of batch) documents.set(document._id, document);
      await Promise.all(batch.map((document) => states.insert(document)));
    }
    const windows = (await collectionNames()).filter((name) => name.startsWith("oauth_states_w"));
    expect(windows.length).toBeGreaterThanOrEqual(SPAN_MS / 1000 / STATE_WINDOW_SECONDS);
    // A window's collection holds only the states created in its seconds.
    const sample = documents.get("pending-1234")!;
    expect(await states.collectionFor(windowOf(sample)).countDocuments()).toBeLessThanOrEqual(Math.ceil((PENDING * STATE_WINDOW_SECONDS * 1000) / SPAN_MS) + 5);

    // A fresh state and older ones, each raced.
    const fresh = attempt("fresh");
    documents.set("fresh", fresh);
    await states.insert(fresh);
    for (const id of ["fresh", "pending-7", `pending-${PENDING - 1}`]) {
      const window = windowOf(documents.get(id)!);
      const results = await Promise.all(Array.from({ length: 10 }, () => states.consumeByHash(id, window)));
      expect(results.filter((r) => r !== null), id).toHaveLength(1);
      expect(results.find((r) => r !== null)).toMatchObject({ _id: id, organisation_id: "acme", client_id: "client" });
      expect(await states.consumeByHash(id, window), `${id} replayed`).toBeNull();
    }

    // What a callback sends: one find by _id and one marker insert, both in the state's window; no
    // delete. isPending reads the state and its marker by exact _id (two finds; no `$in`, which
    // FerretDB would answer by decoding the whole window).
    commands.length = 0;
    expect(await states.isPending("pending-1234", windowOf(sample))).toBe(true);
    expect((await states.consumeByHash("pending-1234", windowOf(sample)))?._id).toBe("pending-1234");
    expect(await states.isPending("pending-1234", windowOf(sample))).toBe(false);
    const name = `oauth_states_w${windowOf(sample)}`;
    expect(commands).toEqual([`find ${name}`, `find ${name}`, `find ${name}`, `insert ${name}`, `find ${name}`, `find ${name}`]);
  });

  it("refuses a forged state whose window is out of range or malformed without a database call", async () => {
    const now = new Date();
    const tooOld = stateWindowAt(new Date(now.getTime() - 2 * 3_600_000));
    const future = stateWindowAt(new Date(now.getTime() + 3_600_000));
    commands.length = 0;
    for (const window of [tooOld, future, "zzzzzzzzzz", null]) {
      expect(await states.consumeByHash("pending-1234", window)).toBeNull();
      expect(await states.isPending("pending-1234", window)).toBe(false);
    }
    expect(commands).toEqual([]);
    // An in-range window that holds no such state: one bounded read, nothing written.
    expect(await states.consumeByHash("forged", stateWindowAt(now))).toBeNull();
    expect(commands).toEqual([`find oauth_states_w${stateWindowAt(now)}`]);
  });

  it("re-encrypts the verifiers of states in every window", async () => {
    const [oldKey, newKey] = [generateEncryptionKey("old"), generateEncryptionKey("new")];
    const before = new SecretBox(parseEncryptionKeys(oldKey));
    const context = (hash: string) => `oauth_states/${hash}/code_verifier`;
    const sealed = [0, 100_000, 300_000].map((ago, i) => ({ ...attempt(`sealed-${i}`, ago), code_verifier: before.encrypt(`verifier-sealed-${i}`, context(`sealed-${i}`)) }));
    await Promise.all(sealed.map((document) => states.insert(document)));
    expect(new Set(sealed.map(windowOf)).size).toBe(3);
    const after = new SecretBox(parseEncryptionKeys(`${newKey},${oldKey}`));
    expect(await states.reencrypt(after, context)).toBe(3);
    for (const document of sealed) {
      const consumed = await states.consumeByHash(document._id, windowOf(document));
      expect(consumed?.code_verifier?.startsWith("new.")).toBe(true);
      expect(after.decrypt(consumed!.code_verifier!, context(document._id))).toBe(`verifier-${document._id}`);
    }
  });

  it("drops whole window collections once every state in them has expired, and none comes back", async () => {
    expect((await collectionNames()).some((name) => name.startsWith("oauth_states_w"))).toBe(true);
    // Not before: the freshest window stays while its states live.
    await states.maintain();
    expect(await collectionNames()).toContain(`oauth_states_w${windowOf(documents.get("fresh")!)}`);
    const later = new Date(Date.now() + 2 * 3_600_000);
    await states.maintain(later);
    expect((await collectionNames()).filter((name) => name.startsWith("oauth_states_"))).toEqual([]);
    expect(await states.consumeByHash("pending-100", windowOf(documents.get("pending-100")!))).toBeNull();
  });
});

describe("OAuthStateStore after an upgrade from the version without windows (legacy states)", () => {
  it("completes a legacy state exactly once, wherever the previous version kept it, then drops those collections", async () => {
    const db = database.db;
    // As the previous version left them: the current generation, a moving one, a bucket partition.
    const inCurrent = attempt("legacy-current");
    const inMoving = attempt("legacy-moving");
    const inBucket = attempt("Alegacy-bucket");
    const end = (Math.floor(inBucket.expire_time.getTime() / 1000 / 600) + 1) * 600;
    await db.collection<OAuthStateDocument>("oauth_states").insertOne(inCurrent);
    await db.collection<OAuthStateDocument>(`oauth_states_moving_${Date.now()}_ab12`).insertOne(inMoving);
    await db.collection<OAuthStateDocument>(`oauth_states_until_${end}_p0`).insertOne(inBucket);
    const upgraded = new OAuthStateStore(db);
    for (const id of ["legacy-current", "legacy-moving", "Alegacy-bucket"]) {
      expect(await upgraded.isPending(id, undefined)).toBe(true);
      const results = await Promise.all(Array.from({ length: 10 }, () => upgraded.consumeByHash(id, undefined)));
      expect(results.filter((r) => r !== null), id).toHaveLength(1);
      expect(results.find((r) => r !== null)).toMatchObject({ _id: id, organisation_id: "acme" });
      expect(await upgraded.consumeByHash(id, undefined), `${id} replayed`).toBeNull();
      expect(await upgraded.isPending(id, undefined)).toBe(false);
    }
    // Kept while anything in them lives; dropped once the TTL has passed.
    const legacy = async () => (await collectionNames()).filter((name) => /^oauth_states(_moving_|_until_|$)/.test(name));
    await upgraded.maintain();
    expect(await legacy()).toEqual(expect.arrayContaining(["oauth_states", expect.stringMatching(/^oauth_states_moving_/), `oauth_states_until_${end}_p0`]));
    await upgraded.maintain(new Date(Date.now() + 2 * 3_600_000));
    expect(await legacy()).toEqual([]);
  });
});
