import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ApiKeyService } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

// Issue 21: one organisation's listings and counts, however many keys it uses, have a budget of
// their own (BROKER_ORG_LISTING_CONCURRENCY) so they cannot crowd out another organisation.

let broker: TestBroker;
let provider: ScriptedProvider;
const keys: string[] = [];
let globexKey: string;

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker({ BROKER_ORG_LISTING_CONCURRENCY: "2" });
  const credentialId = await createScriptedCredential(broker, provider);
  for (let i = 0; i < 3; i++) await connectThroughCallback(broker, credentialId);
  const apiKeys = broker.connect(ApiKeyService);
  for (let i = 0; i < 3; i++) keys.push((await apiKeys.createApiKey({ name: `acme ${i}`, organisationId: "acme" })).key);
  globexKey = (await apiKeys.createApiKey({ name: "globex", organisationId: "globex" })).key;
  recordSecrets(...keys, globexKey);
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});

describe("the per-organisation listing budget", () => {
  it("refuses one organisation's listings past its share, across its keys, with RESOURCE_EXHAUSTED and RetryInfo, while another's go on", async () => {
    // Thirty listings and counts at once from three keys of one organisation, two allowed in flight.
    const acme = keys.map((key) => broker.grpc(ConnectionService, key));
    const flood = Array.from({ length: 30 }, (_, i) => {
      const client = acme[i % acme.length]!;
      const call = i % 2 === 0 ? client.listConnections({ organisationId: "acme" }) : client.countConnections({ organisationId: "acme" });
      return call.then(
        () => undefined,
        (error: unknown) => error,
      );
    });
    // The other organisation, at its own share, meanwhile: every call succeeds.
    const globex = broker.grpc(ConnectionService, globexKey);
    for (let round = 0; round < 5; round++) {
      const results = await Promise.allSettled([globex.listConnections({ organisationId: "globex" }), globex.countConnections({ organisationId: "globex" })]);
      expect(results.filter((result) => result.status === "rejected")).toEqual([]);
    }
    const failures = (await Promise.all(flood)).filter((error) => error !== undefined);
    expect(failures.length).toBeGreaterThan(0);
    for (const failure of failures) {
      const error = await connectError(Promise.reject(failure));
      expect([error.code, error.rawMessage]).toEqual([Code.ResourceExhausted, "too many listings in flight for this organisation - retry shortly"]);
      expect(error.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBe(1n);
    }
    // Once the flood is over, the organisation lists again (the budget was given back).
    expect((await acme[0]!.listConnections({ organisationId: "acme" })).connections).toHaveLength(3);
  });

  it("does not count the organisation's other calls", async () => {
    const acme = broker.grpc(ConnectionService, keys[0]!);
    const { connections } = await acme.listConnections({ organisationId: "acme" });
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => acme.getConnection({ organisationId: "acme", id: connections[0]!.id })),
    );
    expect(results.filter((result) => result.status === "rejected")).toEqual([]);
  });
});
