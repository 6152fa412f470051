import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { ROTATE_AFTER } from "../../src/store/oauth-states.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { createScriptedCredential } from "../support/connect-flow.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

let broker: TestBroker;
let provider: ScriptedProvider;

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker();
  provider.behaviour = { kind: "json", body: { access_token: "pending-at", token_type: "bearer" } };
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});

const callback = async (state: string) => {
  const response = await fetch(`${broker.httpUrl}/oauth2/callback?state=${state}&code=c`, { redirect: "manual" });
  await response.text();
  return response.status;
};
const stateCollections = async () =>
  (await broker.database.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).filter((name) => name.startsWith("oauth_states_"));

describe("the callback, once the broker has moved a state out of the current generation", () => {
  it("completes the flow exactly once, and the moving generation is gone", { timeout: 90_000 }, async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    const client = broker.connect(ConnectionService);
    const initialise = async () => {
      const { url } = await client.initialiseOAuth2Connection({
        organisationId: "acme",
        connectorId: "c",
        credential: { id: credentialId, organisationId: "acme" },
        authorizeUrl: "https://idp.example/authorize",
        clientId: "client-1",
      });
      const state = new URL(url).searchParams.get("state")!;
      recordSecrets(state);
      return state;
    };
    const first = await initialise();
    // Enough more flows that the broker's maintenance rotates the generation holding the first.
    for (let i = 0; i < ROTATE_AFTER; i += 50) await Promise.all(Array.from({ length: 50 }, initialise));
    await expect.poll(stateCollections, { timeout: 10_000 }).toContainEqual(expect.stringMatching(/^oauth_states_moving_/));
    // Copied to its bucket partition, then the moving generation dropped (10 s after the rename).
    await expect
      .poll(async () => (await stateCollections()).filter((name) => name.startsWith("oauth_states_moving_")), { timeout: 30_000, interval: 500 })
      .toEqual([]);

    const hash = createHash("sha256").update(first).digest("base64url");
    expect(await broker.database.db.collection("oauth_states").countDocuments({ _id: hash as never })).toBe(0);

    const statuses = await Promise.all([callback(first), callback(first), callback(first)]);
    expect(statuses.sort()).toEqual([200, 400, 400]);
    expect(await callback(first)).toBe(400);
    expect(await broker.database.db.collection("connections").countDocuments({ organisation_id: "acme", connector_id: "c" })).toBe(1);
  });
});
