import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

/** A minimal OTLP/HTTP (JSON) trace receiver, on loopback. */
let receiver: Server;
const spans: Array<{ traceId: string; parentSpanId?: string; name: string }> = [];
let broker: TestBroker;
let provider: ScriptedProvider;

beforeAll(async () => {
  receiver = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    if (req.url === "/v1/traces") {
      const payload = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: typeof spans }> }> };
      for (const resource of payload.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans);
    }
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  provider = await ScriptedProvider.start();
  broker = await startTestBroker({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}` });
});
afterAll(async () => {
  await provider.close();
  receiver.close();
});

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";

describe("observability", () => {
  it("continues the caller's traceparent into log lines and exported spans, for RPCs and the callback", async () => {
    const response = await fetch(`${broker.httpUrl}/oauth2broker.v1.CredentialService/ListCredentials`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${broker.adminToken}`,
        "content-type": "application/json",
        traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`,
      },
      body: JSON.stringify({ organisationId: "acme" }),
    });
    expect(response.status).toBe(200);
    const rpcLine = broker.logs.find((line) => line.msg === "rpc" && line.rpc === "oauth2broker.v1.CredentialService/ListCredentials");
    expect(rpcLine?.trace_id).toBe(TRACE_ID);

    provider.behaviour = { kind: "json", body: { access_token: "obs-at", token_type: "bearer" } };
    await connectThroughCallback(broker, await createScriptedCredential(broker, provider));
    const callbackLine = broker.logs.find((line) => line.route === "oauth2_callback");
    expect(callbackLine?.trace_id).toMatch(/^[0-9a-f]{32}$/);

    await broker.close(); // flushes the exporter
    const rpcSpan = spans.find((span) => span.name === "oauth2broker.v1.CredentialService/ListCredentials");
    expect(rpcSpan).toMatchObject({ traceId: TRACE_ID, parentSpanId: PARENT_ID });
    expect(spans.map((span) => span.name)).toContain("GET /oauth2/callback");
    expect(spans.find((span) => span.name === "GET /oauth2/callback")?.traceId).toBe(callbackLine?.trace_id);
  });
});

describe("metrics and health endpoints", () => {
  let second: TestBroker;
  beforeAll(async () => {
    second = await startTestBroker();
  });
  afterAll(() => second.close());

  it("count RPCs, callbacks, token requests and database commands, with no identifiers in labels", async () => {
    const credentialId = await createScriptedCredential(second, provider);
    provider.behaviour = { kind: "json", body: { access_token: "m-at", token_type: "bearer" } };
    const connectionId = await connectThroughCallback(second, credentialId);
    await fetch(`${second.httpUrl}/oauth2/callback?state=forged&code=c`);
    await second.connect(CredentialService).getCredential({ organisationId: "acme", id: "missing" }).catch(() => undefined);

    const response = await fetch(`${second.httpUrl}/metrics`);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toMatch(/broker_rpc_requests_total\{method="oauth2broker.v1.CredentialService\/CreateCredential",code="ok"\} 1/);
    expect(text).toMatch(/broker_rpc_requests_total\{method="oauth2broker.v1.CredentialService\/GetCredential",code="not_found"\} 1/);
    expect(text).toMatch(/broker_rpc_duration_seconds_bucket\{le="0.1",method="oauth2broker.v1.ConnectionService\/InitialiseOAuth2Connection",code="ok"\} 1/);
    expect(text).toMatch(/broker_callback_outcomes_total\{outcome="connected"\} 1/);
    expect(text).toMatch(/broker_callback_outcomes_total\{outcome="invalid_state"\} 1/);
    expect(text).toMatch(/broker_token_requests_total\{kind="exchange",outcome="ok"\} 1/);
    expect(text).toMatch(/broker_db_command_duration_seconds_count\{command="insert",collection="oauth_states",outcome="ok"\} \d+/);
    expect(text).toMatch(/broker_process_resident_memory_bytes \d+/);
    for (const identifier of ["acme", credentialId, connectionId, "client-1", second.adminToken]) expect(text).not.toContain(identifier);
  });

  it("answers liveness and readiness", async () => {
    expect((await fetch(`${second.httpUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${second.httpUrl}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, "ready\n"]);
  });
});
