import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { stateWindowAt } from "../../src/oauth/state.js";
import { connectDatabase, type Database } from "../../src/store/database.js";
import { type OAuthStateDocument, OAuthStateStore } from "../../src/store/oauth-states.js";

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

// Every attempt here is created in one window (the window of a state's creation picks its collection).
const CREATED = Date.now();
const WINDOW = stateWindowAt(new Date(CREATED));
const windowCollection = () => states.collectionFor(WINDOW);

function attempt(id: string, expiresInMs: number): OAuthStateDocument {
  const now = Date.now();
  return {
    _id: id,
    organisation_id: "acme",
    connector_id: "c",
    credential_id: "cred",
    client_id: "client",
    redirect_uri: "http://127.0.0.1/oauth2/callback",
    scopes: [],
    create_time: new Date(CREATED),
    expire_time: new Date(now + expiresInMs),
  };
}

describe("OAuthStateStore against FerretDB", () => {
  it("hands a state out once", async () => {
    await states.insert(attempt("once", 60_000));
    expect((await states.consumeByHash("once", WINDOW))?._id).toBe("once");
    expect(await states.consumeByHash("once", WINDOW)).toBeNull();
  });

  // Regression: FerretDB's findOneAndDelete handed one state to several concurrent callers.
  it("gives exactly one of many concurrent consumers the state, every time", async () => {
    for (let round = 0; round < 50; round++) {
      await states.insert(attempt(`raced-${round}`, 60_000));
      const results = await Promise.all(Array.from({ length: 10 }, () => states.consumeByHash(`raced-${round}`, WINDOW)));
      expect(results.filter((r) => r !== null), `round ${round}`).toHaveLength(1);
    }
  });

  it("never returns an expired state, even before its window is dropped", async () => {
    await states.insert(attempt("expired", -1));
    expect(await states.consumeByHash("expired", WINDOW)).toBeNull();
    expect(await states.isPending("expired", WINDOW)).toBe(false);
    expect(await windowCollection().countDocuments({ _id: "consumed:expired" })).toBe(0);
  });

  // FerretDB refuses TTL indexes; a plain one would serve no query and be written on every insert.
  it("gives a window's collection no expiry index where TTL indexes are refused, only its _id", async () => {
    await states.insert(attempt("indexed", 60_000));
    await new OAuthStateStore(database.db).insert(attempt("second-instance", 60_000));
    const indexes = await windowCollection().listIndexes().toArray();
    expect(indexes.map((i) => i.name)).toEqual(["_id_"]);
    expect((await states.consumeByHash("second-instance", WINDOW))?._id).toBe("second-instance");
  });
});

describe("OAuthStateStore.insert groups concurrent inserts (group commit)", () => {
  it("stores every one of many concurrent inserts with fewer insert commands than calls", async () => {
    const before = commands.filter((c) => c === `insert oauth_states_w${WINDOW}`).length;
    const ids = Array.from({ length: 60 }, (_, i) => `many-${i}`);
    await Promise.all(ids.map((id) => states.insert(attempt(id, 60_000))));
    expect(await windowCollection().countDocuments({ _id: { $in: ids } })).toBe(60);
    const sent = commands.filter((c) => c === `insert oauth_states_w${WINDOW}`).length - before;
    expect(sent).toBeGreaterThanOrEqual(2);
    expect(sent).toBeLessThan(60);
  });

  it("fails only the call whose document the server refused", async () => {
    await states.insert(attempt("taken", 60_000));
    const outcomes = await Promise.allSettled([
      states.insert(attempt("first", 60_000)),
      states.insert(attempt("batch-a", 60_000)),
      states.insert(attempt("taken", 60_000)),
      states.insert(attempt("batch-b", 60_000)),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect((outcomes[2] as PromiseRejectedResult).reason).toMatchObject({ code: 11000 });
    expect(await windowCollection().countDocuments({ _id: { $in: ["first", "batch-a", "batch-b", "taken"] } })).toBe(4);
  });

  it("rejects every waiting call when the database cannot be reached, and stores nothing", async () => {
    const offline = await connectDatabase(inject("mongodbUri"), database.db.databaseName);
    const offlineStates = new OAuthStateStore(offline.db);
    await offline.client.close();
    const outcomes = await Promise.allSettled(["gone-1", "gone-2", "gone-3"].map((id) => offlineStates.insert(attempt(id, 60_000))));
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected", "rejected"]);
    expect(await windowCollection().countDocuments({ _id: { $in: ["gone-1", "gone-2", "gone-3"] } })).toBe(0);
  });
});
