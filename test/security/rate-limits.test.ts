import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { RateLimiter } from "../../src/interceptors/rate-limit.js";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { connectError } from "../support/errors.js";

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker({ BROKER_RPC_RATE_LIMIT: "1", BROKER_CALLBACK_RATE_LIMIT: "6" });
});
afterAll(() => broker.close());

describe("rate limits", () => {
  it("refuse RPCs over the caller's rate with RESOURCE_EXHAUSTED and retry-after", async () => {
    const client = broker.connect(CredentialService);
    const started = Date.now();
    const results = await Promise.allSettled(Array.from({ length: 15 }, () => client.listCredentials({ organisationId: "acme" })));
    const elapsed = Date.now() - started;
    // A burst of twice the rate (2), plus one refilled per second the burst took to serve: at
    // most one on an idle machine, where it takes well under a second; more on a loaded one.
    const allowed = results.filter((r) => r.status === "fulfilled").length;
    expect(allowed).toBeGreaterThanOrEqual(2);
    expect(allowed).toBeLessThanOrEqual(2 + Math.ceil(elapsed / 1000));
    // A refusal of the burst's own: a call made after it could find a token refilled meanwhile.
    const error = await connectError(Promise.reject((results.find((r) => r.status === "rejected") as PromiseRejectedResult).reason));
    expect(error).toMatchObject({ code: Code.ResourceExhausted, rawMessage: "rate limit exceeded - slow down" });
    expect(Number(error.metadata.get("retry-after"))).toBeGreaterThanOrEqual(1);
  });

  it("refuse callback requests over the per-address rate with 429 and Retry-After", async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`${broker.httpUrl}/oauth2/callback?state=forged-${i}&code=c`);
      statuses.push(response.status);
      retryAfter ??= response.headers.get("retry-after");
    }
    expect(statuses).toEqual([400, 400, 429, 429]); // bursts of a third of the per-minute rate
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  });

  it("shed load past the in-flight limit with RESOURCE_EXHAUSTED, and recover", async () => {
    const provider = await ScriptedProvider.start();
    const busy = await startTestBroker({ BROKER_MAX_IN_FLIGHT: "2", BROKER_TOKEN_REQUEST_TIMEOUT: "1s" });
    try {
      // Two calls held in flight by refreshes (of two connections) that never answer (until the 1 s
      // timeout). Calls that wait on another call's refresh would not count.
      provider.behaviour = { kind: "json", body: { access_token: "busy-at", token_type: "bearer", expires_in: 1, refresh_token: "busy-rt" } };
      const credentialId = await createScriptedCredential(busy, provider);
      const connectionIds = [await connectThroughCallback(busy, credentialId), await connectThroughCallback(busy, credentialId)];
      provider.refreshBehaviour = { kind: "hang" };
      const connections = busy.connect(ConnectionService);
      const held = connectionIds.map((connectionId) => connections.getAccessToken({ organisationId: "acme", connectionId }).catch(() => undefined));
      await expect.poll(() => provider.grants("refresh_token").length, { timeout: 15_000 }).toBe(2);
      expect(await connectError(busy.connect(CredentialService).listCredentials({ organisationId: "acme" }))).toMatchObject({
        code: Code.ResourceExhausted,
        rawMessage: "the broker is overloaded - retry shortly",
      });
      await Promise.all(held);
      expect((await busy.connect(CredentialService).listCredentials({ organisationId: "acme" })).credentials).toHaveLength(1);
    } finally {
      await busy.close();
      await provider.close();
    }
  });

  it("refill over time", () => {
    const limiter = new RateLimiter(1, 2);
    expect([limiter.take("k", 0), limiter.take("k", 0), limiter.take("k", 0)]).toEqual([0, 0, 1]);
    expect(limiter.take("k", 1_000)).toBe(0);
    expect(limiter.take("other", 0)).toBe(0);
  });
});
