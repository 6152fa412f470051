import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { createScriptedCredential, startFlow } from "../support/connect-flow.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

let broker: TestBroker;
let provider: ScriptedProvider;
let initialise: () => Promise<string>;

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker();
  provider.behaviour = { kind: "json", body: { access_token: "pending-at", token_type: "bearer" } };
  const credentialId = await createScriptedCredential(broker, provider);
  initialise = () => startFlow(broker, credentialId, "c");
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});

const sha256 = (text: string) => createHash("sha256").update(text).digest("base64url");
const callback = async (state: string) => {
  const response = await fetch(`${broker.httpUrl}/oauth2/callback?state=${encodeURIComponent(state)}&code=c`, { redirect: "manual" });
  await response.text();
  return response.status;
};
const connectionCount = () => broker.database.db.collection("connections").countDocuments({ organisation_id: "acme", connector_id: "c" });

describe("the callback with many flows pending", () => {
  it("completes a flow exactly once, reading only the collection of the state's creation window", { timeout: 90_000 }, async () => {
    const first = await initialise();
    const [window, random] = first.split(".");
    expect(window).toMatch(/^[1-9a-z][0-9a-z]*$/);
    expect(random).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (let i = 0; i < 500; i += 50) await Promise.all(Array.from({ length: 50 }, initialise));
    const held = await broker.database.db.collection(`oauth_states_w${window}`).countDocuments({ _id: sha256(first) as never });
    expect(held).toBe(1);

    const before = await connectionCount();
    const statuses = await Promise.all([callback(first), callback(first), callback(first)]);
    expect(statuses.sort()).toEqual([200, 400, 400]);
    expect(await callback(first)).toBe(400);
    expect(await connectionCount()).toBe(before + 1);
  });

  it("refuses a forged state naming a window out of range or malformed, and stores nothing", async () => {
    const first = await initialise();
    const random = first.split(".")[1]!;
    // The event relay may open a recent-events window meanwhile (the earlier test's connection):
    // what a forged state must not make is a collection of its own, so those windows are left out.
    const collections = async () =>
      (await broker.database.db.listCollections({}, { nameOnly: true }).toArray())
        .map((c) => c.name)
        .filter((name) => !name.startsWith("events_recent_"))
        .sort();
    const collectionsBefore = await collections();
    for (const forged of [`1.${random}`, `zzzzzzzzzz.${random}`, `0${first}`, `../x.${random}`, `.${random}`]) expect(await callback(forged), forged).toBe(400);
    const collectionsAfter = await collections();
    expect(collectionsAfter).toEqual(collectionsBefore);
    // The genuine one is still pending.
    expect(await callback(first)).toBe(200);
  });

  it("completes a flow started before the upgrade (no window in the state) exactly once", async () => {
    // As the previous version stored it: the hash of an unprefixed state, in `oauth_states`.
    const current = await initialise();
    const [window, legacyState] = current.split(".") as [string, string];
    const stored = await broker.database.db.collection(`oauth_states_w${window}`).findOne({ _id: sha256(current) as never });
    const { code_verifier: _bound, ...attempt } = stored!; // its verifier is bound to the other hash
    await broker.database.db.collection("oauth_states").insertOne({ ...attempt, _id: sha256(legacyState) as never });
    const before = await connectionCount();
    const statuses = await Promise.all([callback(legacyState), callback(legacyState), callback(legacyState)]);
    expect(statuses.sort()).toEqual([200, 400, 400]);
    expect(await callback(legacyState)).toBe(400);
    expect(await connectionCount()).toBe(before + 1);
  });
});
