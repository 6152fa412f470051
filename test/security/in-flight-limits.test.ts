import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

/** BROKER_MAX_IN_FLIGHT and BROKER_MAX_IN_FLIGHT_PER_CALLER. */
const INSTANCE_LIMIT = 20;
const CALLER_LIMIT = 5;

let broker: TestBroker;
let provider: ScriptedProvider;
let acmeKey: string;
let globexKey: string;
const connectionIds: string[] = [];

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker({
    BROKER_MAX_IN_FLIGHT: String(INSTANCE_LIMIT),
    BROKER_MAX_IN_FLIGHT_PER_CALLER: String(CALLER_LIMIT),
    BROKER_TOKEN_REQUEST_TIMEOUT: "8s",
  });
  // Tokens that need a refresh at once, from a token endpoint that will never answer it.
  provider.behaviour = { kind: "json", body: { access_token: "flood-at", token_type: "bearer", expires_in: 1, refresh_token: "flood-rt" } };
  const credentialId = await createScriptedCredential(broker, provider);
  for (let i = 0; i < 6; i++) connectionIds.push(await connectThroughCallback(broker, credentialId));
  provider.refreshBehaviour = { kind: "hang" };
  const keys = broker.connect(ApiKeyService);
  acmeKey = (await keys.createApiKey({ name: "acme flood", organisationId: "acme" })).key;
  globexKey = (await keys.createApiKey({ name: "globex", organisationId: "globex" })).key;
  recordSecrets(acmeKey, globexKey);
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});

/** The other organisation's calls, five at a time (its own cap) for three rounds: each must succeed. */
async function globexCallsSucceed(): Promise<void> {
  const globex = broker.grpc(CredentialService, globexKey);
  for (let round = 0; round < 3; round++) {
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => globex.listCredentials({ organisationId: "globex" })));
    expect(results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason)).toEqual([]);
  }
}

describe("in-flight limits per caller", () => {
  it("regression: calls of one key waiting on a hanging refresh no longer starve every other tenant", async () => {
    const connections = broker.grpc(ConnectionService, acmeKey);
    const refreshesBefore = provider.grants("refresh_token").length;
    // 90 calls for one connection (one HTTP/2 connection takes 100 streams) share one refresh: that is one call's work, not 90. They
    // arrive one every 20 ms while the refresh hangs; the caller may have 5 calls of its own.
    const first = connectError(connections.getAccessToken({ organisationId: "acme", connectionId: connectionIds[0] }));
    await expect.poll(() => provider.grants("refresh_token").length, { timeout: 15_000 }).toBe(refreshesBefore + 1);
    const flood = [first];
    for (let i = 0; i < 90; i++) {
      flood.push(connectError(connections.getAccessToken({ organisationId: "acme", connectionId: connectionIds[0] })));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await globexCallsSucceed();
    const outcomes = (await Promise.all(flood)).map((error) => `${Code[error.code]}: ${error.rawMessage}`);
    const shared = "Unavailable: refreshing the access token failed at the provider - try again later";
    // None was shed by the instance's limit (20); a call that came while 5 others had not yet
    // joined the wait may meet the caller's cap. How many did depends on how fast the machine
    // gets each call to the wait (under load, more of them), but more waited together than
    // either limit lets a caller have in flight: waiting holds no slot of either.
    const capped = "ResourceExhausted: too many calls in flight for this caller - retry shortly";
    expect(outcomes.filter((outcome) => outcome !== shared && outcome !== capped)).toEqual([]);
    expect(outcomes.filter((outcome) => outcome === shared).length).toBeGreaterThan(INSTANCE_LIMIT);
    expect(provider.grants("refresh_token").length).toBe(refreshesBefore + 1);
  });

  it("caps the calls one caller has in flight, and other organisations' calls keep succeeding", async () => {
    const connections = broker.grpc(ConnectionService, acmeKey);
    const refreshesBefore = provider.grants("refresh_token").length;
    // Five refreshes of five connections: five calls' own work, the caller's whole allowance.
    const held = connectionIds.slice(1, 6).map((connectionId) => connectError(connections.getAccessToken({ organisationId: "acme", connectionId })));
    await expect.poll(() => provider.grants("refresh_token").length, { timeout: 15_000 }).toBe(refreshesBefore + 5);
    const refused = await connectError(broker.grpc(CredentialService, acmeKey).listCredentials({ organisationId: "acme" }));
    expect(refused).toMatchObject({ code: Code.ResourceExhausted, rawMessage: "too many calls in flight for this caller - retry shortly" });
    expect(refused.metadata.get("retry-after")).toBe("1");
    await globexCallsSucceed();
    await Promise.all(held);
    expect((await broker.grpc(CredentialService, acmeKey).listCredentials({ organisationId: "acme" })).credentials).toHaveLength(1);
  });
});
