import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { createScriptedCredential } from "../support/connect-flow.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { expectUnchanged } from "./support.js";

let broker: TestBroker;
let provider: ScriptedProvider;

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker();
  provider.behaviour = { kind: "json", body: { access_token: "cb-at", token_type: "bearer" } };
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});

async function stateFor(organisationId: string): Promise<string> {
  const credentialId = await createScriptedCredential(broker, provider, { organisationId });
  const { url } = await broker.connect(ConnectionService).initialiseOAuth2Connection({
    organisationId,
    connectorId: "c",
    credential: { id: credentialId, organisationId },
    authorizeUrl: "https://idp.example/authorize",
    clientId: "client-1",
  });
  return new URL(url).searchParams.get("state")!;
}

const callback = (query: string) => fetch(`${broker.httpUrl}/oauth2/callback?${query}`, { redirect: "manual" });

describe("the callback under attack", () => {
  it.each([
    ["a forged state", () => `state=${randomBytes(32).toString("base64url")}&code=c`, 400],
    ["no state", () => "code=c", 400],
    ["an oversized query string", () => `state=x&code=${"c".repeat(10_000)}`, 414],
    ["an oversized parameter", () => `state=${"s".repeat(300)}&code=c`, 400],
    ["many parameters", () => `state=x&${Array.from({ length: 100 }, (_, i) => `p${i}=1`).join("&")}`, 400],
  ])("%s: refused, nothing changes", async (_label, query, status) => {
    await expectUnchanged(broker.database.db, async () => {
      const response = await callback(query());
      expect(response.status).toBe(status);
      expect(response.headers.get("cache-control")).toBe("no-store");
      await response.text();
    });
  });

  it("a replayed state: refused the second time, nothing more stored", async () => {
    const state = await stateFor("acme");
    expect((await callback(`state=${state}&code=c`)).status).toBe(200);
    await expectUnchanged(broker.database.db, async () => {
      expect((await callback(`state=${state}&code=c`)).status).toBe(400);
    });
  });

  it("an expired state: refused, and never consumed (its window's collection is dropped later)", async () => {
    const state = await stateFor("acme");
    const hash = createHash("sha256").update(state).digest("base64url");
    const window = broker.database.db.collection(`oauth_states_w${state.split(".")[0]}`);
    await window.updateOne({ _id: hash as never }, { $set: { expire_time: new Date(Date.now() - 1) } });
    expect((await callback(`state=${state}&code=c`)).status).toBe(400);
    expect((await callback(`state=${state}&code=c`)).status).toBe(400);
    expect(await window.countDocuments({ _id: `consumed:${hash}` as never })).toBe(0);
    expect(await broker.database.db.collection("connections").countDocuments({ organisation_id: "acme", connector_id: "expired" })).toBe(0);
  });

  it("another organisation's state lands in that organisation, whatever the query claims", async () => {
    const state = await stateFor("globex");
    const before = await broker.database.db.collection("connections").countDocuments({ organisation_id: "acme" });
    expect((await callback(`state=${state}&code=c&organisation_id=acme&connector_id=stolen&credential_id=x`)).status).toBe(200);
    expect(await broker.database.db.collection("connections").countDocuments({ organisation_id: "acme" })).toBe(before);
    expect(await broker.database.db.collection("connections").countDocuments({ organisation_id: "globex", connector_id: "c" })).toBe(1);
  });
});
