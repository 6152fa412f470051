import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService, type ConnectionStatus } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { recordSecrets } from "../support/run-record.js";

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

let broker: TestBroker;
let provider: ScriptedProvider;
let receiver: Server;
const deliveries: Delivery[] = [];
let failuresLeft = 3;

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker({ BROKER_WEBHOOK_RETRY_MIN: "100ms", BROKER_REFRESH_RETRY_MIN: "100ms" });
  // A receiver that fails its first three deliveries, then recovers.
  receiver = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    const status = failuresLeft-- > 0 ? 500 : 200;
    deliveries.push({ headers: req.headers, body, status });
    res.writeHead(status).end();
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
});
afterAll(async () => {
  await broker.close();
  await provider.close();
  receiver.closeAllConnections();
  receiver.close();
});

describe("connection events", () => {
  it("reach a signed webhook at least once, through failures, and the Watch stream, each event once by ID", async () => {
    const organisations = broker.connect(OrganisationService);
    const { settings } = await organisations.updateOrganisationSettings({
      settings: { organisationId: "acme", webhookUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks` },
      updateMask: { paths: ["webhook_url"] },
    });
    expect(settings?.webhookSecretCount).toBe(0);
    const { secret: previousSecret } = await organisations.rotateWebhookSecret({ organisationId: "acme" });
    const { secret, webhookSecretCount } = await organisations.rotateWebhookSecret({ organisationId: "acme" });
    expect(webhookSecretCount).toBe(2);
    recordSecrets(secret, previousSecret);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const stored = JSON.stringify(await broker.database.db.collection("organisations").findOne({ _id: "acme" as never }));
    expect(stored).not.toContain(secret.slice(6));

    // Watch from before the changes.
    const abort = new AbortController();
    const watched: Array<{ id: string; type: string; status: ConnectionStatus; statusReason: string; connectionId: string }> = [];
    const watching = (async () => {
      try {
        for await (const { event } of broker.grpc(ConnectionService).watchConnectionEvents({ organisationId: "acme" }, { signal: abort.signal })) {
          watched.push(event!);
        }
      } catch {
        // aborted
      }
    })();

    // Four changes: created, refresh_failed, needs_reauthorization, deleted.
    provider.behaviour = { kind: "json", body: { access_token: "wh-at", token_type: "bearer", expires_in: 1, refresh_token: "wh-rt" } };
    const id = await connectThroughCallback(broker, await createScriptedCredential(broker, provider));
    const connections = broker.connect(ConnectionService);
    provider.refreshBehaviour = { kind: "raw", status: 503, contentType: "text/plain", body: "busy" };
    await connections.getAccessToken({ organisationId: "acme", connectionId: id }).catch(() => undefined);
    provider.refreshBehaviour = { kind: "raw", status: 400, contentType: "application/json", body: '{"error":"invalid_grant"}' };
    // The failed refresh is retried after its backoff, not on the next call.
    await new Promise((resolve) => setTimeout(resolve, 150));
    await connections.getAccessToken({ organisationId: "acme", connectionId: id }).catch(() => undefined);
    await connections.deleteConnection({ organisationId: "acme", id });

    const expectedTypes = ["connection.created", "connection.refresh_failed", "connection.needs_reauthorization", "connection.deleted"];
    const accepted = () => deliveries.filter((d) => d.status === 200);
    await expect.poll(() => new Set(accepted().map((d) => d.headers["webhook-id"])).size, { timeout: 15_000 }).toBe(4);
    await expect.poll(() => watched.length, { timeout: 15_000 }).toBe(4);
    abort.abort();
    await watching;

    // Every delivery is signed for both valid secrets; a receiver holding either one verifies it.
    expect(deliveries.filter((d) => d.status === 500)).toHaveLength(3);
    for (const delivery of deliveries) {
      const headers = {
        "webhook-id": String(delivery.headers["webhook-id"]),
        "webhook-timestamp": String(delivery.headers["webhook-timestamp"]),
        "webhook-signature": String(delivery.headers["webhook-signature"]),
      };
      expect(headers["webhook-signature"].split(" ")).toHaveLength(2);
      expect(new Webhook(secret).verify(delivery.body, headers)).toEqual(JSON.parse(delivery.body));
      expect(new Webhook(previousSecret).verify(delivery.body, headers)).toEqual(JSON.parse(delivery.body));
      expect(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString("base64")}`).verify(delivery.body, headers)).toThrow();
      expect(() => new Webhook(secret).verify(delivery.body.replace("acme", "evil"), headers)).toThrow();
    }

    // De-duplicated by ID, the receiver has each event once.
    const byId = new Map(accepted().map((d) => [String(d.headers["webhook-id"]), JSON.parse(d.body)]));
    const payloads = [...byId.values()];
    expect(payloads.map((p) => p.type).sort()).toEqual([...expectedTypes].sort());
    for (const payload of payloads) {
      expect(payload.data).toMatchObject({ organisationId: "acme", connectionId: id, connectorId: "scripted", type: payload.type });
      expect(JSON.stringify(payload)).not.toMatch(/wh-at|wh-rt/);
    }
    expect(payloads.find((p) => p.type === "connection.needs_reauthorization")?.data).toMatchObject({
      status: "CONNECTION_STATUS_NEEDS_REAUTHORIZATION",
      statusReason: "invalid_grant",
    });

    // The stream saw the same events, in order.
    expect(watched.map((e) => e.type)).toEqual(expectedTypes);
    expect(new Set(watched.map((e) => e.id))).toEqual(new Set(byId.keys()));
    expect(watched.every((e) => e.connectionId === id)).toBe(true);
  }, 30_000);

  it("are stored but not posted for an organisation without a webhook", async () => {
    provider.behaviour = { kind: "json", body: { access_token: "x", token_type: "bearer" } };
    const credential = await broker.connect(OrganisationService).getOrganisationSettings({ organisationId: "quiet" });
    expect(credential.settings?.webhookUrl).toBe("");
    const before = deliveries.length;
    await broker.database.db.collection("organisations").deleteOne({ _id: "acme" as never });
    const id = await connectThroughCallback(broker, await createScriptedCredential(broker, provider));
    await expect
      .poll(async () => (await broker.database.db.collection("events").findOne({ connection_id: id }))?.delivery, { timeout: 15_000 })
      .toBe("no_webhook");
    expect(deliveries.length).toBe(before);
    // Regression: FerretDB ignored the relay's $pull condition, so published events stayed in the
    // outbox and were published again every second.
    await expect
      .poll(async () => (await broker.database.db.collection("connections").findOne({ _id: id as never }))?.pending_events, { timeout: 15_000 })
      .toEqual([]);
  });
});
