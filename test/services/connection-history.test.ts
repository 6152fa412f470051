import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService, ConnectionStatus } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { ApiKeyService } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { recordSecrets } from "../support/run-record.js";

let broker: TestBroker;
let provider: ScriptedProvider;

beforeAll(async () => {
  broker = await startTestBroker();
  provider = await ScriptedProvider.start();
});
afterAll(async () => {
  await broker?.close();
  await provider?.close();
});

/** Waits until the relay has published `count` events for the organisation. */
async function eventsPublished(count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await broker.database.db.collection("events").countDocuments({ organisation_id: "acme" })) < count) {
    if (Date.now() > deadline) throw new Error(`fewer than ${count} events were published`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("the console's queries, for every client", () => {
  it("lists past events newest first, a page at a time, and one connection's timeline", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await connectThroughCallback(broker, credentialId, `history-${i}`));
    await broker.grpc(ConnectionService).deleteConnection({ organisationId: "acme", id: ids[0]! });
    await eventsPublished(4);

    const client = broker.grpc(ConnectionService);
    const first = await client.listConnectionEvents({ organisationId: "acme", pageSize: 3 });
    expect(first.events.map((event) => [event.type, event.connectionId])).toEqual([
      ["connection.deleted", ids[0]],
      ["connection.created", ids[2]],
      ["connection.created", ids[1]],
    ]);
    const second = await client.listConnectionEvents({ organisationId: "acme", pageSize: 3, pageToken: first.nextPageToken });
    expect(second.events.map((event) => [event.type, event.connectionId])).toEqual([["connection.created", ids[0]]]);
    expect(second.nextPageToken).toBe("");

    const timeline = await client.listConnectionEvents({ organisationId: "acme", connectionId: ids[0]! });
    expect(timeline.events.map((event) => event.type)).toEqual(["connection.deleted", "connection.created"]);

    const counts = await client.countConnections({ organisationId: "acme" });
    expect(counts.counts.map((entry) => [entry.status, Number(entry.count)])).toEqual([
      [ConnectionStatus.ACTIVE, 2],
      [ConnectionStatus.REFRESH_FAILED, 0],
      [ConnectionStatus.NEEDS_REAUTHORIZATION, 0],
      [ConnectionStatus.PENDING, 0],
    ]);
    expect(counts.failingConnectionsByCredential).toEqual({});
  });

  it("refuses a page token that is not one, naming the field", async () => {
    const error = await broker.grpc(ConnectionService).listConnectionEvents({ organisationId: "acme", pageToken: "nope" }).catch((e) => e);
    expect(ConnectError.from(error)).toMatchObject({ code: Code.InvalidArgument, rawMessage: '"page_token" is not a token from a previous page' });
  });

  it("shows an organisation's caller only its own organisation and its own events", async () => {
    const { key } = await broker.grpc(ApiKeyService).createApiKey({ name: "globex", organisationId: "globex" });
    recordSecrets(key);
    expect(await broker.grpc(OrganisationService, key).listOrganisations({})).toMatchObject({ organisationIds: ["globex"], callerIsAdmin: false });
    const admin = await broker.grpc(OrganisationService).listOrganisations({});
    expect(admin.callerIsAdmin).toBe(true);
    expect(admin.organisationIds).toEqual(expect.arrayContaining(["acme", "globex"]));
    const error = await broker.grpc(ConnectionService, key).listConnectionEvents({ organisationId: "acme" }).catch((e) => e);
    expect(ConnectError.from(error).code).toBe(Code.NotFound);
    const counts = await broker.grpc(ConnectionService, key).countConnections({ organisationId: "acme" }).catch((e) => e);
    expect(ConnectError.from(counts).code).toBe(Code.NotFound);
  });
});
