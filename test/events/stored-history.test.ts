import { randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { MongoClient } from "mongodb";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import type { ConnectionDocument } from "../../src/store/connections.js";
import type { EventDocument } from "../../src/store/event-document.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

// Issue 13: the relay, webhook delivery and the event feed poll small collections of their own
// (outbox notes, deliveries to make, recent-event windows) instead of scanning `connections` and
// `events`. With thousands of stored connections and events, they still deliver exactly the new
// events, once each, and pick up what was left pending before those collections existed.

const HISTORY = 5_000;
const database = `test_${randomUUID().replaceAll("-", "")}`;
const longAgo = new Date(Date.now() - 86_400_000);

let broker: TestBroker;
let provider: ScriptedProvider;
let receiver: Server;
const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];

function storedConnection(id: string, organisationId: string, status: ConnectionDocument["status"] = "ACTIVE"): ConnectionDocument {
  return {
    _id: id,
    organisation_id: organisationId,
    connector_id: "history",
    credential_id: "history-credential",
    status,
    scopes: ["read"],
    token_type: "Bearer",
    pending_events: [],
    create_time: longAgo,
    update_time: longAgo,
  };
}

function storedEvent(i: number, organisationId: string, delivery: EventDocument["delivery"] = "delivered"): EventDocument {
  return {
    _id: uuidv7({ msecs: longAgo.getTime() + i }),
    type: "connection.created",
    organisation_id: organisationId,
    connection_id: `history-${i}`,
    connector_id: "history",
    credential_id: "history-credential",
    status: "ACTIVE",
    create_time: longAgo,
    publish_time: longAgo,
    delivery,
    attempts: delivery === "delivered" ? 1 : 0,
    next_attempt_time: longAgo,
  };
}

const deletedId = uuidv7();
const otherOrganisationId = uuidv7();
const legacyConnectionId = uuidv7();
const legacyEventId = uuidv7();
const legacyPendingDelivery = storedEvent(HISTORY + 1, "legacy", "pending");
// Unconfirmed connections made before their expiry notes existed: one expires during the test.
const expiringId = uuidv7();
const waitingId = uuidv7();
const holdingId = uuidv7();
const unconfirmed = (id: string, expireTime: Date): ConnectionDocument => ({
  ...storedConnection(id, "acme", "PENDING"),
  access_token: "v1.sealed-elsewhere",
  end_user_id: "erin",
  confirmation_hash: "hash",
  pending_expire_time: expireTime,
});

beforeAll(async () => {
  // The history, as earlier versions left it: half of it the organisation under test's.
  const client = new MongoClient(inject("mongodbUri"));
  try {
    const db = client.db(database);
    for (let i = 0; i < HISTORY; i += 1_000) {
      await db.collection<ConnectionDocument>("connections").insertMany(
        Array.from({ length: 1_000 }, (_, j) => storedConnection(uuidv7(), (i + j) % 2 === 0 ? "acme" : "other")),
      );
      await db.collection<EventDocument>("events").insertMany(Array.from({ length: 1_000 }, (_, j) => storedEvent(i + j, (i + j) % 2 === 0 ? "acme" : "other")));
    }
    await db.collection<ConnectionDocument>("connections").insertMany([
      storedConnection(deletedId, "acme", "DELETED"),
      storedConnection(otherOrganisationId, "other"),
      unconfirmed(expiringId, new Date(Date.now() + 8_000)),
      unconfirmed(waitingId, new Date(Date.now() + 3_600_000)),
      // A reconnect's grant held for ConfirmConnection, from before the notes too.
      {
        ...storedConnection(holdingId, "acme"),
        reauthorization: {
          scopes: ["read"],
          token_type: "Bearer",
          access_token: "v1.sealed-elsewhere",
          end_user_id: "erin",
          confirmation_hash: "hash",
          hold_expire_time: new Date(Date.now() + 8_000),
        },
      },
      // An event in a connection's outbox, and a delivery pending, from before their collections existed.
      {
        ...storedConnection(legacyConnectionId, "legacy"),
        pending_events: [{ _id: legacyEventId, type: "connection.recovered", status: "ACTIVE", create_time: longAgo }],
      },
    ]);
    await db.collection<EventDocument>("events").insertOne(legacyPendingDelivery);
  } finally {
    await client.close();
  }
  receiver = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    received.push({ headers: req.headers, body });
    res.writeHead(200).end();
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  provider = await ScriptedProvider.start();
  // A short state TTL: the expiry job runs every 5 s.
  broker = await startTestBroker({ MONGODB_DATABASE: database, BROKER_WEBHOOK_RETRY_MIN: "100ms", BROKER_STATE_TTL: "10s" });
}, 60_000);

afterAll(async () => {
  await broker.close();
  await provider.close();
  receiver.closeAllConnections();
  receiver.close();
});

describe("events with 5 000 connections and events stored", () => {
  it("are relayed, delivered to the webhook and streamed exactly: the new ones, once each", async () => {
    const organisations = broker.connect(OrganisationService);
    await organisations.updateOrganisationSettings({
      settings: { organisationId: "acme", webhookUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks` },
      updateMask: { paths: ["webhook_url"] },
    });
    recordSecrets((await organisations.rotateWebhookSecret({ organisationId: "acme" })).secret);

    const abort = new AbortController();
    const watched: Array<{ id: string; type: string; connectionId: string }> = [];
    const watching = (async () => {
      try {
        for await (const { event } of broker.grpc(ConnectionService).watchConnectionEvents({ organisationId: "acme" }, { signal: abort.signal })) {
          watched.push(event!);
        }
      } catch {
        // aborted
      }
    })();

    provider.behaviour = { kind: "json", body: { access_token: "history-at", token_type: "bearer", refresh_token: "history-rt" } };
    const id = await connectThroughCallback(broker, await createScriptedCredential(broker, provider));
    await broker.connect(ConnectionService).deleteConnection({ organisationId: "acme", id });

    const events = broker.database.db.collection<EventDocument>("events");
    await expect.poll(() => received.length, { timeout: 10_000 }).toBe(2);
    await expect.poll(() => watched.length, { timeout: 15_000 }).toBe(2);
    // Several relay, delivery and feed intervals pass: nothing else arrives.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    abort.abort();
    await watching;

    // Each outcome is written once the receiver has answered.
    const outcomes = async () => (await events.find({ connection_id: id }).sort({ _id: 1 }).toArray()).map((event) => [event.type, event.delivery, event.attempts]);
    await expect.poll(outcomes, { timeout: 15_000 }).toEqual([
      ["connection.created", "delivered", 1],
      ["connection.deleted", "delivered", 1],
    ]);
    const published = await events.find({ connection_id: id }).sort({ _id: 1 }).toArray();
    // Once each; deliveries run in parallel, so not necessarily in publish order (README).
    expect(received.map((delivery) => String(delivery.headers["webhook-id"])).sort()).toEqual(published.map((event) => event._id));
    expect(watched.map((event) => [event.id, event.type, event.connectionId])).toEqual(published.map((event) => [event._id, event.type, id]));

    // The history is untouched; the small collections are empty again, and the deleted connection is gone.
    expect(await events.countDocuments({ delivery: "delivered", organisation_id: { $in: ["acme", "other"] } })).toBe(HISTORY + 2);
    await expect.poll(() => broker.database.db.collection("connection_outbox").countDocuments(), { timeout: 15_000 }).toBe(0);
    await expect.poll(() => broker.database.db.collection("webhook_deliveries").countDocuments(), { timeout: 15_000 }).toBe(0);
    expect(await broker.database.db.collection("connections").findOne({ _id: id as never })).toBeNull();
  }, 30_000);

  it("finds a connection by ID alone, and still not another organisation's or a deleted one (NOT_FOUND)", async () => {
    const connections = broker.connect(ConnectionService);
    const { connection } = await connections.getConnection({ organisationId: "other", id: otherOrganisationId });
    expect(connection).toMatchObject({ id: otherOrganisationId, organisationId: "other", connectorId: "history" });
    for (const [organisationId, id] of [
      ["acme", otherOrganisationId],
      ["acme", deletedId],
    ] as const) {
      const error = await connections.getConnection({ organisationId, id }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ConnectError);
      expect([(error as ConnectError).code, (error as ConnectError).rawMessage]).toEqual([Code.NotFound, "connection not found"]);
      const tokenError = await connections.getAccessToken({ organisationId, connectionId: id }).catch((caught: unknown) => caught);
      expect([(tokenError as ConnectError).code, (tokenError as ConnectError).rawMessage]).toEqual([Code.NotFound, "connection not found"]);
    }
  });

  it("relays an outbox event and finishes a delivery recorded before their small collections existed", async () => {
    const events = broker.database.db.collection<EventDocument>("events");
    // The organisation has no webhook: both end as `no_webhook`, neither is posted.
    await expect.poll(async () => (await events.findOne({ _id: legacyEventId }))?.delivery, { timeout: 10_000 }).toBe("no_webhook");
    expect(await events.findOne({ _id: legacyEventId })).toMatchObject({ type: "connection.recovered", organisation_id: "legacy", connection_id: legacyConnectionId });
    await expect.poll(async () => (await events.findOne({ _id: legacyPendingDelivery._id }))?.delivery, { timeout: 15_000 }).toBe("no_webhook");
    await expect
      .poll(async () => (await broker.database.db.collection<ConnectionDocument>("connections").findOne({ _id: legacyConnectionId }))?.pending_events, { timeout: 15_000 })
      .toEqual([]);
    expect(received.map((delivery) => String(delivery.headers["webhook-id"]))).not.toContain(legacyEventId);
  });

  it("deletes an unconfirmed connection and drops a held grant when their time is up, from their expiry notes, and no other", async () => {
    const stored = broker.database.db.collection<ConnectionDocument>("connections");
    const notes = broker.database.db.collection("connection_expiries");
    // Start-up noted both (they were made before the notes existed); nothing sweeps `connections`.
    await expect.poll(() => stored.countDocuments({ _id: expiringId }), { timeout: 20_000, interval: 500 }).toBe(0);
    await expect.poll(async () => (await stored.findOne({ _id: holdingId }))?.reauthorization, { timeout: 10_000, interval: 500 }).toBeUndefined();
    expect(await stored.findOne({ _id: holdingId })).toMatchObject({ status: "ACTIVE", organisation_id: "acme" });
    expect(await notes.find({}).toArray()).toEqual([{ _id: waitingId, expire_time: expect.any(Date) }]);
    expect(await stored.findOne({ _id: waitingId })).toMatchObject({ status: "PENDING", end_user_id: "erin" });
    expect(await stored.countDocuments({ status: "ACTIVE" })).toBe(HISTORY + 3);
  }, 30_000);
});
