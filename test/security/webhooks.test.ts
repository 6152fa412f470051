import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { SecretBox } from "../../src/crypto/secret-box.js";
import { MAX_IN_FLIGHT_PER_RECEIVER } from "../../src/events/webhook-delivery.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { webhookSecretContext } from "../../src/crypto/secret-contexts.js";

/** Webhook deliveries: signed or not sent, and isolated per receiver. */
let broker: TestBroker;
let provider: ScriptedProvider;
const receivers: Server[] = [];

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  provider.behaviour = { kind: "json", body: { access_token: "hook-at", token_type: "bearer" } };
  broker = await startTestBroker({ BROKER_WEBHOOK_RETRY_MIN: "100ms" });
});
afterAll(async () => {
  await broker.close();
  await provider.close();
  for (const receiver of receivers) {
    receiver.closeAllConnections();
    receiver.close();
  }
});

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** A webhook receiver on loopback that answers 204, or never answers when `hang`. */
async function startReceiver(hang = false) {
  const received: Received[] = [];
  let open = 0;
  let mostOpen = 0;
  const server = createServer(async (req, res) => {
    open++;
    mostOpen = Math.max(mostOpen, open);
    req.once("close", () => open--);
    let body = "";
    for await (const chunk of req) body += chunk;
    received.push({ headers: req.headers, body, at: Date.now() });
    if (!hang) res.writeHead(204).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receivers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, received, mostOpen: () => mostOpen };
}

const organisations = () => broker.connect(OrganisationService);

async function setWebhook(organisationId: string, webhookUrl: string) {
  await organisations().updateOrganisationSettings({ settings: { organisationId, webhookUrl }, updateMask: { paths: ["webhook_url"] } });
}

async function rotate(organisationId: string): Promise<string> {
  const { secret } = await organisations().rotateWebhookSecret({ organisationId });
  recordSecrets(secret);
  return secret;
}

/** Connects `count` accounts in `organisationId` through the real callback: one event each. */
async function connectAccounts(organisationId: string, count: number): Promise<void> {
  const { credential } = await broker.connect(CredentialService).createCredential({
    credential: { organisationId, name: "Hooks", clientId: "client-1", clientSecret: "hooks-client-secret", tokenUrl: provider.tokenUrl },
  });
  for (let i = 0; i < count; i++) {
    const { url } = await broker.connect(ConnectionService).initialiseOAuth2Connection({
      organisationId,
      connectorId: "hooks",
      credential: { id: credential!.id, organisationId },
      authorizeUrl: "https://provider.example/authorize",
      clientId: "client-1",
    });
    const state = new URL(url).searchParams.get("state")!;
    recordSecrets(state);
    const response = await fetch(`${broker.httpUrl}/oauth2/callback?state=${state}&code=code-${i}`);
    expect(response.status).toBe(200);
  }
}

function storedSecrets(organisationId: string, document: { webhook_secrets?: string[] } | null | Record<string, unknown>): string[] {
  const box = new SecretBox(broker.config.encryptionKeys!);
  return ((document?.webhook_secrets as string[] | undefined) ?? []).map((sealed) => box.decrypt(sealed, webhookSecretContext(organisationId)));
}

const headersOf = (delivery: Received) => ({
  "webhook-id": String(delivery.headers["webhook-id"]),
  "webhook-timestamp": String(delivery.headers["webhook-timestamp"]),
  "webhook-signature": String(delivery.headers["webhook-signature"]),
});

describe("webhook signatures", () => {
  it("never sends an unsigned delivery: events wait for the first secret, and GetOrganisationSettings says so", async () => {
    const receiver = await startReceiver();
    await setWebhook("unsigned", receiver.url);
    const { settings } = await organisations().getOrganisationSettings({ organisationId: "unsigned" });
    expect(settings).toMatchObject({ webhookSecretCount: 0, webhookDeliveriesWaiting: true });

    await connectAccounts("unsigned", 1);
    const events = broker.database.db.collection("events");
    // Attempts that leave a delivery pending are recorded on its copy in `webhook_deliveries`.
    const deliveries = broker.database.db.collection("webhook_deliveries");
    await expect
      .poll(async () => (await deliveries.findOne({ organisation_id: "unsigned" }))?.last_error, { timeout: 15_000 })
      .toBe("waiting for a webhook secret (RotateWebhookSecret)");
    // Several retry periods (100 ms) pass without a delivery or a counted attempt.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(receiver.received).toHaveLength(0);
    expect(await events.findOne({ organisation_id: "unsigned" })).toMatchObject({ delivery: "pending", attempts: 0 });
    expect(await deliveries.findOne({ organisation_id: "unsigned" })).toMatchObject({ delivery: "pending", attempts: 0 });

    const secret = await rotate("unsigned");
    expect((await organisations().getOrganisationSettings({ organisationId: "unsigned" })).settings?.webhookDeliveriesWaiting).toBe(false);
    await expect.poll(() => receiver.received.length, { timeout: 15_000 }).toBe(1);
    const [delivery] = receiver.received;
    expect(new Webhook(secret).verify(delivery!.body, headersOf(delivery!))).toMatchObject({ type: "connection.created" });
  });

  it("stores every secret that concurrent RotateWebhookSecret calls return (two calls stored one)", async () => {
    for (let round = 0; round < 5; round++) {
      const organisationId = `rotate-${round}`;
      const results = await Promise.all([0, 1].map(() => organisations().rotateWebhookSecret({ organisationId })));
      recordSecrets(...results.map((result) => result.secret));
      expect(results.map((result) => result.webhookSecretCount).sort()).toEqual([1, 2]);
      const document = await broker.database.db.collection("organisations").findOne({ _id: organisationId as never });
      expect(storedSecrets(organisationId, document).sort()).toEqual(results.map((result) => result.secret).sort());
    }
  });

  it("answers every concurrent first-time UpdateOrganisationSettings and keeps each field (INTERNAL duplicate key in 11 of 40)", async () => {
    const calls = Array.from({ length: 40 }, (_, i) => {
      const organisationId = `first-${Math.floor(i / 4)}`;
      return i % 2 === 0
        ? organisations().updateOrganisationSettings({
            settings: { organisationId, allowedReturnUrls: ["https://app.example.com/oauth"] },
            updateMask: { paths: ["allowed_return_urls"] },
          })
        : organisations().updateOrganisationSettings({
            settings: { organisationId, webhookUrl: "https://hooks.example.com/in" },
            updateMask: { paths: ["webhook_url"] },
          });
    });
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.filter((outcome) => outcome.status === "rejected")).toEqual([]);
    for (let i = 0; i < 10; i++) {
      const { settings } = await organisations().getOrganisationSettings({ organisationId: `first-${i}` });
      expect(settings).toMatchObject({ allowedReturnUrls: ["https://app.example.com/oauth"], webhookUrl: "https://hooks.example.com/in" });
    }
  });
});

describe("webhook isolation", () => {
  it("a receiver that never answers delays only its own organisation's deliveries (40 events delayed another by 18 s)", async () => {
    const hanging = await startReceiver(true);
    const healthy = await startReceiver();
    await setWebhook("hangs", hanging.url);
    await setWebhook("healthy", healthy.url);
    await rotate("hangs");
    const secret = await rotate("healthy");

    await connectAccounts("hangs", 40);
    await expect.poll(() => hanging.received.length, { timeout: 15_000 }).toBeGreaterThan(0);
    const started = Date.now();
    await connectAccounts("healthy", 1);
    await expect.poll(() => healthy.received.length, { timeout: 15_000 }).toBe(1);
    // Held behind the hanging receiver's deliveries, it would wait for their 10 s timeout (it
    // once waited 18 s); 5 s leaves a loaded machine time for the callback, relay and POST.
    expect(healthy.received[0]!.at - started).toBeLessThan(5_000);
    expect(new Webhook(secret).verify(healthy.received[0]!.body, headersOf(healthy.received[0]!))).toMatchObject({ type: "connection.created" });
    // The hanging receiver holds no more than its own share of deliveries.
    expect(hanging.mostOpen()).toBeLessThanOrEqual(MAX_IN_FLIGHT_PER_RECEIVER);
  }, 30_000);
});
