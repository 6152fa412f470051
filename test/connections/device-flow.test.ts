import { randomBytes, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { Code } from "@connectrpc/connect";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { toJsonString } from "@bufbuild/protobuf";
import { ConnectionKind, ConnectionService, ConnectionStatus, StartDeviceAuthorizationResponseSchema } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { generateEncryptionKey, parseEncryptionKeys, SecretBox } from "../../src/crypto/secret-box.js";
import { connectionSecretContext } from "../../src/crypto/secret-contexts.js";
import { reencryptAll } from "../../src/maintenance/reencrypt-all.js";
import { connectDatabase } from "../../src/store/database.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { type BrokerProcess, startBrokerProcess } from "../support/broker-process.js";
import { processHandle } from "../support/process-handle.js";
import { type DeviceFlowProvider, startDeviceFlowProvider } from "../support/device-provider.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

let provider: DeviceFlowProvider;
let browser: Browser;
const brokers: TestBroker[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/install-test-tools.sh (npm test does)`);
  provider = await startDeviceFlowProvider();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await Promise.all(brokers.map((broker) => broker.close()));
  await provider?.close();
});

/** A broker in a database of its own. */
async function broker(): Promise<TestBroker> {
  const started = await startTestBroker({ BROKER_ENCRYPTION_KEYS: generateEncryptionKey("device1") });
  brokers.push(started);
  return started;
}

/** A credential with only the provider's issuer: discovery names its token and device authorization endpoints. */
async function credential(on: TestBroker): Promise<string> {
  const { credential } = await on.connect(CredentialService).createCredential({
    credential: { organisationId: "acme", name: "Device provider", clientId: provider.clientId, clientSecret: provider.clientSecret, issuer: provider.issuer },
  });
  return credential!.id;
}

async function start(on: TestBroker, credentialId: string) {
  return on.connect(ConnectionService).startDeviceAuthorization({
    organisationId: "acme",
    connectorId: "cli",
    credential: { id: credentialId, organisationId: "acme" },
    scopes: ["openid", "offline_access"],
  });
}

/** The end user on another device: opens verification_uri_complete, confirms the code, signs in and approves (or aborts). */
async function userAnswers(verificationUriComplete: string, answer: "approve" | "abort"): Promise<void> {
  const page = await browser.newPage();
  try {
    await page.goto(verificationUriComplete);
    await page.waitForSelector("text=Confirm Device");
    if (answer === "abort") {
      await page.click('button[name="abort"]');
      await page.waitForLoadState("load");
      return;
    }
    await page.click('button[type="submit"][autofocus]');
    await page.fill('input[name="login"]', `user-${randomUUID().slice(0, 8)}`);
    await page.fill('input[name="password"]', "any password");
    await page.click('button[type="submit"]');
    await page.waitForSelector("text=Authorize");
    await page.click('button[type="submit"]');
    await page.waitForSelector("text=Sign-in Success");
  } finally {
    await page.close();
  }
}

async function eventsOf(on: TestBroker, connectionId: string): Promise<string[]> {
  const { events } = await on.connect(ConnectionService).listConnectionEvents({ organisationId: "acme", connectionId });
  return events.map((event) => (event.statusReason === "" ? event.type : `${event.type}(${event.statusReason})`)).reverse();
}

async function status(on: TestBroker, id: string): Promise<ConnectionStatus | "not_found"> {
  try {
    return (await on.connect(ConnectionService).getConnection({ organisationId: "acme", id })).connection!.status;
  } catch {
    return "not_found";
  }
}

/** Gaps between consecutive polls, in seconds. */
function gaps(polls: Array<{ time: number }>): number[] {
  return polls.slice(1).map((poll, i) => (poll.time - polls[i]!.time) / 1000);
}

describe("the device authorization grant (RFC 8628) against oidc-provider", () => {
  it("returns the user code and is PENDING, then ACTIVE with tokens once the user approves in the browser", async () => {
    provider.interval = 1;
    const b = await broker();
    const started = await start(b, await credential(b));
    expect(started.userCode).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);
    expect(started.verificationUri).toBe(`${provider.issuer}/device`);
    expect(started.verificationUriComplete).toContain(`user_code=${started.userCode}`);
    expect(started.intervalSeconds).toBe(1);
    expect(started.expireTime!.seconds).toBeGreaterThan(BigInt(Math.floor(Date.now() / 1000) + 100));
    const id = started.connection!.id;
    expect(started.connection!.kind).toBe(ConnectionKind.DEVICE_CODE);
    expect(started.connection!.status).toBe(ConnectionStatus.PENDING);
    // The device code is a secret: encrypted in its own collection, never in the response.
    const stored = await b.database.db.collection("device_authorizations").findOne({ _id: id as never });
    expect(stored!.device_code).toMatch(/^device1\.[\w-]+\.[\w-]+$/);
    const deviceCode = provider.deviceCodeOf(started.userCode)!;
    expect(deviceCode.length).toBeGreaterThan(20);
    expect(toJsonString(StartDeviceAuthorizationResponseSchema, started)).not.toContain(deviceCode);
    expect(JSON.stringify(stored)).not.toContain(deviceCode);
    await expect.poll(() => provider.polls(started.userCode).length, { timeout: 15_000 }).toBeGreaterThanOrEqual(1);
    expect(await status(b, id)).toBe(ConnectionStatus.PENDING);

    await userAnswers(started.verificationUriComplete, "approve");
    await expect.poll(() => status(b, id), { timeout: 15_000 }).toBe(ConnectionStatus.ACTIVE);
    const { connection } = await b.connect(ConnectionService).getConnection({ organisationId: "acme", id });
    expect(connection!.kind).toBe(ConnectionKind.DEVICE_CODE);
    expect(connection!.hasRefreshToken).toBe(true);
    expect(connection!.scopes).toEqual(expect.arrayContaining(["openid", "offline_access"]));
    const token = await b.connect(ConnectionService).getAccessToken({ organisationId: "acme", connectionId: id });
    recordSecrets(token.accessToken);
    expect(token.tokenType).toBe("bearer");
    expect(token.accessToken.length).toBeGreaterThan(20);
    await expect.poll(() => eventsOf(b, id), { timeout: 15_000 }).toEqual(["connection.created"]);
    // Nothing waits any more (the note is removed after the connection is written); the last poll
    // brought the tokens, and every gap honoured the interval.
    await expect.poll(() => b.database.db.collection("device_authorizations").countDocuments(), { timeout: 15_000 }).toBe(0);
    const polls = provider.polls(started.userCode);
    expect(polls.at(-1)!.outcome).toBe("tokens");
    for (const gap of gaps(polls)) expect(gap).toBeGreaterThanOrEqual(0.95);
    // Nor in any log line (the run's log check covers every broker too).
    expect(JSON.stringify(b.logs)).not.toContain(deviceCode);
  }, 60_000);

  it("waits 5 seconds longer after slow_down, for that and every later poll", async () => {
    provider.interval = 1;
    provider.slowDownPolls = 1;
    try {
      const b = await broker();
      const started = await start(b, await credential(b));
      await expect.poll(() => provider.polls(started.userCode).length, { timeout: 20_000, interval: 200 }).toBeGreaterThanOrEqual(3);
      const polls = provider.polls(started.userCode);
      expect(polls[0]!.outcome).toBe("slow_down");
      expect(polls[1]!.outcome).toBe("authorization_pending");
      // 1 s, then 1 + 5 s between polls from the slow_down on.
      for (const gap of gaps(polls)) expect(gap).toBeGreaterThanOrEqual(5.95);
      const stored = await b.database.db.collection("device_authorizations").findOne({ _id: started.connection!.id as never });
      expect(stored!.interval_seconds).toBe(6);
    } finally {
      provider.slowDownPolls = 0;
    }
  }, 40_000);

  it("deletes the connection with access_denied in its event when the user aborts", async () => {
    provider.interval = 1;
    const b = await broker();
    const started = await start(b, await credential(b));
    const id = started.connection!.id;
    await userAnswers(started.verificationUriComplete, "abort");
    await expect.poll(() => status(b, id), { timeout: 15_000 }).toBe("not_found");
    await expect.poll(() => eventsOf(b, id), { timeout: 15_000 }).toEqual(["connection.deleted(access_denied)"]);
    expect(provider.polls(started.userCode).at(-1)!.outcome).toBe("access_denied");
    await expect.poll(() => b.database.db.collection("device_authorizations").countDocuments(), { timeout: 15_000 }).toBe(0);
  }, 40_000);

  it("deletes the connection with expired_token in its event when the device code expires, however long BROKER_STATE_TTL is", async () => {
    provider.interval = 1;
    provider.deviceCodeTtl = 3;
    try {
      const b = await broker();
      const started = await start(b, await credential(b));
      const id = started.connection!.id;
      await expect.poll(() => status(b, id), { timeout: 15_000 }).toBe("not_found");
      await expect.poll(() => eventsOf(b, id), { timeout: 15_000 }).toEqual(["connection.deleted(expired_token)"]);
      await expect.poll(() => b.database.db.collection("device_authorizations").countDocuments(), { timeout: 15_000 }).toBe(0);
    } finally {
      provider.deviceCodeTtl = 120;
    }
  }, 30_000);

  it("deletes it at the device code's expiry even when the next poll would come later, without polling", async () => {
    provider.interval = 30;
    provider.deviceCodeTtl = 2;
    try {
      const b = await broker();
      const started = await start(b, await credential(b));
      const id = started.connection!.id;
      await expect.poll(() => status(b, id), { timeout: 15_000 }).toBe("not_found");
      await expect.poll(() => eventsOf(b, id), { timeout: 15_000 }).toEqual(["connection.deleted(expired_token)"]);
      expect(provider.polls(started.userCode)).toEqual([]);
    } finally {
      provider.deviceCodeTtl = 120;
    }
  }, 30_000);

  it("completes after the broker process crashes mid-poll, with two new processes polling each device code once per interval", async () => {
    provider.interval = 2;
    const databaseName = `test_${randomUUID().replaceAll("-", "")}`;
    const database = await connectDatabase(inject("mongodbUri"), databaseName);
    const env = {
      MONGODB_URI: inject("mongodbUri"),
      MONGODB_DATABASE: databaseName,
      BROKER_ADMIN_TOKEN: randomBytes(32).toString("base64url"),
      BROKER_ENCRYPTION_KEYS: generateEncryptionKey("shared1"),
      BROKER_TOKEN_REQUEST_TIMEOUT: "2s",
      BROKER_LOG_LEVEL: "debug",
      BROKER_OUTBOUND_ALLOWLIST: "127.0.0.1",
      BROKER_RPC_RATE_LIMIT: "100000",
    };
    const processes: BrokerProcess[] = [];
    const spawnBroker = async () => {
      const started = await startBrokerProcess(env);
      processes.push(started);
      return processHandle(started, database);
    };
    try {
      const first = await spawnBroker();
      const { credential: created } = await first.connect(CredentialService).createCredential({
        credential: { organisationId: "acme", name: "Device provider", clientId: provider.clientId, clientSecret: provider.clientSecret, issuer: provider.issuer },
      });
      const started = await first.connect(ConnectionService).startDeviceAuthorization({
        organisationId: "acme",
        connectorId: "cli",
        credential: { id: created!.id, organisationId: "acme" },
        scopes: ["openid", "offline_access"],
      });
      const id = started.connection!.id;
      await expect.poll(() => provider.polls(started.userCode).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
      // A crash: nothing finishes, a lease may be left behind.
      await processes[0]!.kill();
      const [a, b] = await Promise.all([spawnBroker(), spawnBroker()]);
      await userAnswers(started.verificationUriComplete, "approve");
      const statusOn = async (handle: typeof a) =>
        (await handle.connect(ConnectionService).getConnection({ organisationId: "acme", id })).connection!.status;
      await expect.poll(() => statusOn(a), { timeout: 20_000, interval: 250 }).toBe(ConnectionStatus.ACTIVE);
      expect(await statusOn(b)).toBe(ConnectionStatus.ACTIVE);
      const polls = provider.polls(started.userCode);
      expect(polls.filter((poll) => poll.outcome === "tokens")).toHaveLength(1);
      // One poller per device code: never two polls within the interval, whichever instance sent them.
      for (const gap of gaps(polls)) expect(gap).toBeGreaterThanOrEqual(1.95);
      // Events leave through the outbox after the write that made them, so they may trail the
      // status by a relay pass (at worst the 30 s recovery scan, when a crash left a lease).
      const eventTypes = async () =>
        (await a.connect(ConnectionService).listConnectionEvents({ organisationId: "acme", connectionId: id })).events.map((event) => event.type);
      await expect.poll(eventTypes, { timeout: 45_000, interval: 500 }).toEqual(["connection.created"]);
      const deviceCode = provider.deviceCodeOf(started.userCode)!;
      for (const process of processes) expect(process.output()).not.toContain(deviceCode);
    } finally {
      await Promise.all(processes.map((process) => process.kill()));
      await database.client.close();
    }
  }, 120_000);
});

describe("the operator console", () => {
  it("starts a device flow for a credential and shows the code to enter", async () => {
    provider.interval = 1;
    const b = await broker();
    await credential(b);
    const context = await browser.newContext();
    context.setDefaultTimeout(15_000);
    try {
      const page = await context.newPage();
      await page.goto(`${b.httpUrl}/console`);
      await page.getByLabel("API key or admin token").fill(b.adminToken);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByLabel("Other organisation").fill("acme");
      await page.getByRole("button", { name: "Open" }).click();
      await page.getByRole("link", { name: "Credentials" }).click();
      await page.getByRole("button", { name: "Test Device provider" }).click();
      const form = page.getByRole("form", { name: "Device flow Device provider" });
      expect(await form.getByLabel("Device flow scopes (separated by spaces)").inputValue()).toBe("openid offline_access");
      await form.getByRole("button", { name: "Start device flow" }).click();
      const shown = await form.getByRole("status").innerText();
      const userCode = /Enter ([A-Z]{4}-[A-Z]{4}) at/.exec(shown)?.[1];
      expect(userCode, shown).toBeDefined();
      const link = await form.getByRole("link").getAttribute("href");
      expect(link).toBe(`${provider.issuer}/device?user_code=${userCode}`);
      await userAnswers(link!, "approve");
      const id = /connection ([0-9a-f-]{36}) is pending/.exec(shown)![1]!;
      await expect.poll(() => status(b, id), { timeout: 15_000 }).toBe(ConnectionStatus.ACTIVE);
    } finally {
      await context.close();
    }
  }, 60_000);
});

describe("a key rotation", () => {
  it("moves a waiting device code to the new key", async () => {
    provider.interval = 1;
    const b = await broker();
    const started = await start(b, await credential(b));
    const id = started.connection!.id;
    const keys = new SecretBox([...parseEncryptionKeys(generateEncryptionKey("device2")), ...b.config.encryptionKeys!]);
    const report = await reencryptAll(b.database.db, keys);
    expect(report.deviceCodes).toBe(1);
    const stored = await b.database.db.collection("device_authorizations").findOne({ _id: id as never });
    expect(stored!.device_code).toMatch(/^device2\./);
    expect(keys.decrypt(stored!.device_code, connectionSecretContext(id, "device_code"))).toBe(provider.deviceCodeOf(started.userCode));
  });
});

describe("StartDeviceAuthorization's bad input", () => {
  it("is INVALID_ARGUMENT naming the field, and stores nothing", async () => {
    const b = await broker();
    const credentialId = await credential(b);
    const valid = { organisationId: "acme", connectorId: "cli", credential: { id: credentialId, organisationId: "acme" }, scopes: ["openid"] };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ organisationId: "" }, '"organisation_id"'],
      [{ connectorId: "a b" }, '"connector_id"'],
      [{ credential: undefined }, '"credential"'],
      [{ credential: { id: "", organisationId: "acme" } }, '"credential.id"'],
      [{ scopes: ["has space"] }, '"scopes[0]"'],
      [{ scopes: ["ok", ""] }, '"scopes[1]"'],
    ];
    for (const [change, field] of cases) {
      const error = await connectError(b.connect(ConnectionService).startDeviceAuthorization({ ...valid, ...change }));
      expect(error.code, field).toBe(Code.InvalidArgument);
      expect(error.rawMessage.startsWith(field), error.rawMessage).toBe(true);
    }
    const missing = await connectError(b.connect(ConnectionService).startDeviceAuthorization({ ...valid, credential: { id: "nope", organisationId: "acme" } }));
    expect(missing.code).toBe(Code.NotFound);
    // A credential whose provider names no device authorization endpoint.
    const { credential: plain } = await b.connect(CredentialService).createCredential({
      credential: { organisationId: "acme", name: "No device flow", clientId: "c", clientSecret: "plain-client-secret-01", tokenUrl: `${provider.issuer}/token` },
    });
    const noEndpoint = await connectError(
      b.connect(ConnectionService).startDeviceAuthorization({ ...valid, credential: { id: plain!.id, organisationId: "acme" } }),
    );
    expect(noEndpoint.code).toBe(Code.FailedPrecondition);
    expect(noEndpoint.rawMessage).toContain("no known device authorization endpoint");
    expect(await b.database.db.collection("connections").countDocuments()).toBe(0);
    expect(await b.database.db.collection("device_authorizations").countDocuments()).toBe(0);
  });
});
