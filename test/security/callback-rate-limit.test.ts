import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { createScriptedCredential, startFlow } from "../support/connect-flow.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

// The callback limit, as deployed behind a load balancer: every request reaches the broker from
// the balancer's address (here 127.0.0.1, the test's own).
let provider: ScriptedProvider;
let credentialId: string;
const brokers: TestBroker[] = [];

async function broker(env: Record<string, string>): Promise<TestBroker> {
  const started = await startTestBroker({ BROKER_CALLBACK_RATE_LIMIT: "6", ...env }); // bursts of 2
  brokers.push(started);
  credentialId = await createScriptedCredential(started, provider);
  return started;
}

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  provider.behaviour = { kind: "json", body: { access_token: "cb-at", token_type: "bearer", expires_in: 3600 } };
});
afterAll(async () => {
  for (const started of brokers) await started.close();
  await provider.close();
});

/** A genuine attempt's state, as the provider would send it back. */
const pendingState = (b: TestBroker) => startFlow(b, credentialId);

async function callback(b: TestBroker, state: string, headers: Record<string, string> = {}): Promise<number> {
  return (await fetch(`${b.httpUrl}/oauth2/callback?state=${state}&code=c`, { headers })).status;
}

describe("callback rate limit", () => {
  it("regression: forged callbacks from a shared address no longer make a genuine callback 429", async () => {
    const b = await broker({});
    const forged: number[] = [];
    for (let i = 0; i < 20; i++) forged.push(await callback(b, `forged-${i}`));
    expect(forged.slice(0, 2)).toEqual([400, 400]);
    expect(forged.slice(2)).toEqual(Array(18).fill(429));
    // The bucket is empty, and another forged request is still refused…
    expect(await callback(b, "forged-more")).toBe(429);
    // …but a callback carrying a pending state is served.
    expect(await callback(b, await pendingState(b))).toBe(200);
    // Once used, the state is no longer pending: a replay is limited like any forgery.
    expect(await callback(b, "forged-after")).toBe(429);
  });

  it("limits each client behind a trusted proxy by its forwarded address, IPv6 clients by their /64", async () => {
    const b = await broker({ BROKER_TRUSTED_PROXIES: "127.0.0.0/8" });
    const from = (address: string) => ({ "x-forwarded-for": `198.51.100.1, ${address}` });
    const attacker = [];
    for (let i = 0; i < 4; i++) attacker.push(await callback(b, `forged-${i}`, from("203.0.113.66")));
    expect(attacker).toEqual([400, 400, 429, 429]);
    // Another user behind the same proxy has a bucket of their own.
    expect(await callback(b, "typo", from("203.0.113.7"))).toBe(400);
    expect(await callback(b, "typo", { forwarded: 'for="203.0.113.8:5000"' })).toBe(400);
    // Rotating addresses inside one /64 does not get an IPv6 client a new bucket; another /64 does.
    const v6 = [];
    for (let i = 1; i <= 4; i++) v6.push(await callback(b, `forged-v6-${i}`, from(`2001:db8:0:7::${i}`)));
    expect(v6).toEqual([400, 400, 429, 429]);
    expect(await callback(b, "typo", from("2001:db8:0:8::1"))).toBe(400);
  });

  it("ignores forwarding headers from peers that are not trusted proxies", async () => {
    const b = await broker({ BROKER_TRUSTED_PROXIES: "10.0.0.0/8" });
    const statuses = [];
    // Each request claims another address; all come from 127.0.0.1, which is not a trusted proxy.
    for (let i = 0; i < 4; i++) statuses.push(await callback(b, `forged-${i}`, { "x-forwarded-for": `203.0.113.${i}` }));
    expect(statuses).toEqual([400, 400, 429, 429]);
  });
});
