import { createHash, randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { connect as netConnect } from "node:net";
import { Code, type Client } from "@connectrpc/connect";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ApiProxyService } from "../../gen/oauth2broker/v1/api_proxy_service_pb.js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ApiKeyService } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { ApiTokenLocation, ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedApi } from "../support/scripted-api.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { writeCatalog } from "../support/test-catalog.js";

/**
 * The provider API proxy (issue 25) over HTTP/1.1, against a real broker, the scripted token
 * endpoint and scripted provider APIs on loopback.
 */
let broker: TestBroker;
let provider: ScriptedProvider;
let api: ScriptedApi;
/** Listens on 127.0.0.2, which BROKER_OUTBOUND_ALLOWLIST does not name. */
let internal: ScriptedApi;
let credentials: Client<typeof CredentialService>;
let acmeKey: string;
let globexKey: string;

const REPLAY_BYTES = 64 * 1024;
const MAX_BODY_BYTES = 48 * 1024 * 1024;

function catalog(providerBase: string, apiBase: string): Array<Record<string, unknown>> {
  const docs = "https://example.com/docs";
  const common = {
    category: "other",
    documentation_url: docs,
    endpoints: { authorize: `${providerBase}/authorize`, token: `${providerBase}/token` },
    token: { auth_method: "client_secret_post" },
    sources: { endpoints: docs, authorize: docs, token: docs, api: docs },
  };
  return [
    {
      // Salesforce: the REST API on the org's instance_url, from the token response.
      ...common,
      id: "proxy-salesforce",
      display_name: "Proxy Salesforce-like",
      metadata: { response: { instance_url: "instance_url" } },
      api: { base_urls: [{ name: "rest", url: "{instance_url}/services/data" }] },
      sources: { ...common.sources, metadata: docs },
    },
    {
      // Slack: a rejected token is HTTP 200 with "ok": false and "error": "invalid_auth"; a required header.
      ...common,
      id: "proxy-slack",
      display_name: "Proxy Slack-like",
      api: {
        base_urls: [{ name: "web", url: `${apiBase}/api` }],
        headers: { "X-Api-Version": "2024-01" },
        rejected_token: { status: [200], body_field: "error", body_values: ["invalid_auth", "token_revoked"] },
      },
    },
    {
      // The token in the query (Shopify's old REST style) and in a header of its own with no scheme.
      ...common,
      id: "proxy-query",
      display_name: "Proxy token in the query",
      api: { base_urls: [{ name: "rest", url: `${apiBase}/q` }], token: { in: "query", name: "access_token" } },
    },
    {
      ...common,
      id: "proxy-header",
      display_name: "Proxy token in its own header",
      api: { base_urls: [{ name: "rest", url: `${apiBase}/h` }], token: { in: "header", name: "X-Api-Token" } },
    },
  ];
}

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  api = await ScriptedApi.start();
  internal = await ScriptedApi.start("127.0.0.2");
  broker = await startTestBroker({
    BROKER_PROVIDERS_DIR: writeCatalog(catalog(provider.issuer, api.origin)),
    BROKER_PROXY_REPLAY_BODY_BYTES: String(REPLAY_BYTES),
    BROKER_PROXY_MAX_BODY_BYTES: String(MAX_BODY_BYTES),
    BROKER_PROXY_MAX_PER_CONNECTION: "20",
  });
  credentials = broker.connect(CredentialService);
  acmeKey = (await broker.connect(ApiKeyService).createApiKey({ name: "acme backend", organisationId: "acme" })).key;
  globexKey = (await broker.connect(ApiKeyService).createApiKey({ name: "globex backend", organisationId: "globex" })).key;
  recordSecrets(acmeKey, globexKey);
});
afterAll(async () => {
  await broker.close();
  await provider.close();
  await api.close();
  await internal.close();
});
beforeEach(() => {
  api.requests.length = 0;
  internal.requests.length = 0;
  provider.requests.length = 0;
  provider.refreshBehaviour = undefined;
  api.handler = (_request, res) => void res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
});

/** A new connection of `providerId` whose access token is returned with it (each test its own: the forced-refresh window is per connection). */
async function connection(providerId: string): Promise<{ id: string; token: string }> {
  const { credential } = await credentials.createCredential({
    credential: { organisationId: "acme", name: providerId, clientId: "client-1", clientSecret: "scripted-client-secret", provider: providerId },
  });
  const token = `at-${randomBytes(12).toString("base64url")}`;
  provider.behaviour = {
    kind: "json",
    body: { access_token: token, refresh_token: `rt-${randomBytes(12).toString("base64url")}`, token_type: "Bearer", expires_in: 3600, instance_url: api.origin },
  };
  const { url } = await broker.connect(ConnectionService).initialiseOAuth2Connection({
    organisationId: "acme",
    connectorId: "proxy",
    credential: { id: credential!.id, organisationId: "acme" },
    clientId: "client-1",
    scopes: ["read"],
    returnUrl: "",
  });
  const state = new URL(url).searchParams.get("state")!;
  recordSecrets(state);
  const callback = await fetch(`${broker.httpUrl}/oauth2/callback?state=${state}&code=code-${state.slice(0, 8)}`);
  expect(callback.status).toBe(200);
  const stored = await broker.database.db.collection("connections").find({ credential_id: credential!.id }).sort({ _id: -1 }).limit(1).next();
  return { id: String(stored!._id), token };
}

/** The next refresh answers with a new access token, which is returned. */
function nextRefresh(): string {
  const token = `at-${randomBytes(12).toString("base64url")}`;
  provider.refreshBehaviour = { kind: "json", body: { access_token: token, token_type: "Bearer", expires_in: 3600, instance_url: api.origin } };
  return token;
}

function proxy(path: string, init: RequestInit & { key?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has("authorization")) headers.set("authorization", `Bearer ${init.key ?? acmeKey}`);
  return fetch(`${broker.httpUrl}/proxy/${path}`, { ...init, headers, redirect: "manual" });
}

/** A request with its target exactly as written (fetch would normalise `..`). */
function rawRequest(target: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(broker.httpUrl);
    const req = httpRequest({ host: url.hostname, port: url.port, path: target, headers: { authorization: `Bearer ${acmeKey}`, ...headers } }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the token arrives as the catalog says", () => {
  it("Salesforce through instance_url: Bearer in Authorization, the path and query under the base, the caller's credentials left out", async () => {
    const { id, token } = await connection("proxy-salesforce");
    // node:http, not fetch: fetch itself drops a caller's Connection header.
    const response = await rawRequest(`/proxy/${id}/v59.0/query?q=SELECT+Id+FROM+Account`, {
      cookie: "session=caller-cookie",
      "x-broker-retry": "0",
      "x-custom": "kept",
      connection: "keep-alive, x-hop",
      "x-hop": "dropped",
    });
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toEqual({ ok: true });
    const [request] = api.requests;
    expect(request!.target).toBe("/services/data/v59.0/query?q=SELECT+Id+FROM+Account");
    expect(request!.headers.authorization).toBe(`Bearer ${token}`);
    expect(request!.headers.host).toBe(new URL(api.origin).host);
    expect(request!.headers["x-custom"]).toBe("kept");
    for (const dropped of ["cookie", "x-broker-retry", "x-hop"]) expect(request!.headers[dropped]).toBeUndefined();
  });

  it("the catalog's required headers are added; the caller may override them but never the token's header", async () => {
    const { id, token } = await connection("proxy-slack");
    await proxy(`${id}/conversations.list`);
    expect(api.requests[0]!.headers["x-api-version"]).toBe("2024-01");
    expect(api.requests[0]!.target).toBe("/api/conversations.list");
    await proxy(`${id}/conversations.list`, { headers: { "X-Api-Version": "2025-06" } });
    expect(api.requests[1]!.headers["x-api-version"]).toBe("2025-06");
    expect(api.requests[1]!.headers.authorization).toBe(`Bearer ${token}`);

    const header = await connection("proxy-header");
    await proxy(`${header.id}/items`, { headers: { "X-Api-Token": "caller-chosen" } });
    expect(api.requests[2]!.headers["x-api-token"]).toBe(header.token);
    expect(api.requests[2]!.headers.authorization).toBeUndefined();
  });

  it("a query token replaces any the caller sent", async () => {
    const { id, token } = await connection("proxy-query");
    await proxy(`${id}/orders.json?status=any&access_token=caller-chosen&limit=5`);
    const target = new URL(api.requests[0]!.target, "http://x");
    expect(target.pathname).toBe("/q/orders.json");
    expect(target.searchParams.getAll("access_token")).toEqual([token]);
    expect(target.searchParams.get("status")).toBe("any");
    expect(target.searchParams.get("limit")).toBe("5");
  });

  it("Set-Cookie and hop-by-hop headers are removed from the answer; a redirect is passed back, not followed", async () => {
    const { id } = await connection("proxy-salesforce");
    api.handler = (_request, res) =>
      void res.writeHead(200, { "set-cookie": "provider=1", "x-rate-limit-remaining": "99", connection: "x-private", "x-private": "hop", "content-type": "text/plain" }).end("hi");
    const response = await proxy(`${id}/limits`);
    expect(response.headers.get("set-cookie")).toBeNull();
    expect(response.headers.get("x-private")).toBeNull();
    expect(response.headers.get("x-rate-limit-remaining")).toBe("99");
    expect(await response.text()).toBe("hi");

    api.handler = (_request, res) => void res.writeHead(302, { location: `${internal.origin}/steal` }).end();
    const redirected = await proxy(`${id}/moved`);
    expect(redirected.status).toBe(302);
    expect(redirected.headers.get("location")).toBe(`${internal.origin}/steal`);
    expect(api.requests).toHaveLength(2);
    expect(internal.requests).toHaveLength(0);
  });
});

describe("refresh on a rejected token", () => {
  it("a 401 leads to exactly one refresh and one retry each, shared by concurrent callers", async () => {
    const { id, token } = await connection("proxy-salesforce");
    const fresh = nextRefresh();
    api.handler = (request, res) => {
      if (request.headers.authorization === `Bearer ${fresh}`) return void res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
      // Hold the rejections a moment so every caller is rejected before the refresh.
      setTimeout(() => res.writeHead(401, { "www-authenticate": 'Bearer error="invalid_token"' }).end(), 50);
    };
    const answers = await Promise.all(Array.from({ length: 5 }, () => proxy(`${id}/sobjects`)));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200]);
    expect(provider.grants("refresh_token")).toHaveLength(1);
    expect(api.requests.filter((request) => request.headers.authorization === `Bearer ${token}`)).toHaveLength(5);
    expect(api.requests.filter((request) => request.headers.authorization === `Bearer ${fresh}`)).toHaveLength(5);
  });

  it("a second 401 is returned as it is, after one refresh and one retry", async () => {
    const { id } = await connection("proxy-salesforce");
    nextRefresh();
    api.handler = (_request, res) => void res.writeHead(401, { "content-type": "application/json" }).end('{"error":"INVALID_SESSION_ID"}');
    const response = await proxy(`${id}/sobjects`, { method: "POST", body: '{"Name":"Acme"}', headers: { "content-type": "application/json" } });
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ error: "INVALID_SESSION_ID" });
    expect(provider.grants("refresh_token")).toHaveLength(1);
    expect(api.requests).toHaveLength(2);
    expect(api.requests[1]!.bodySha256).toBe(createHash("sha256").update('{"Name":"Acme"}').digest("hex"));
  });

  it("Slack's HTTP 200 with error invalid_auth is a rejected token too", async () => {
    const { id } = await connection("proxy-slack");
    const fresh = nextRefresh();
    api.handler = (request, res) => {
      const ok = request.headers.authorization === `Bearer ${fresh}`;
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify(ok ? { ok: true, channels: [] } : { ok: false, error: "invalid_auth" }));
    };
    const response = await proxy(`${id}/conversations.list`);
    expect(await response.json()).toEqual({ ok: true, channels: [] });
    expect(provider.grants("refresh_token")).toHaveLength(1);
    expect(api.requests).toHaveLength(2);
  });

  it("a body larger than the replay limit is sent once: the token is refreshed but the request is not repeated", async () => {
    const { id } = await connection("proxy-salesforce");
    nextRefresh();
    api.handler = (_request, res) => void res.writeHead(401).end();
    const response = await proxy(`${id}/upload`, { method: "POST", body: randomBytes(REPLAY_BYTES * 4) });
    expect(response.status).toBe(401);
    expect(provider.grants("refresh_token")).toHaveLength(1);
    expect(api.requests).toHaveLength(1);
    expect(api.requests[0]!.bodyBytes).toBe(REPLAY_BYTES * 4);
  });
});

describe("429 and 503", () => {
  it("Retry-After is passed back and remembered: other callers of that path are answered without reaching the provider", async () => {
    const { id } = await connection("proxy-slack");
    api.handler = (request, res) => {
      if (request.target.startsWith("/api/chat.postMessage")) return void res.writeHead(429, { "retry-after": "30" }).end('{"ok":false,"error":"ratelimited"}');
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    };
    const first = await proxy(`${id}/chat.postMessage`, { method: "POST", body: "{}" });
    expect(first.status).toBe(429);
    expect(first.headers.get("retry-after")).toBe("30");
    const second = await proxy(`${id}/chat.postMessage`, { method: "POST", body: "{}" });
    expect(second.status).toBe(429);
    expect(second.headers.get("x-broker-error")).toBe("retry_after");
    expect(Number(second.headers.get("retry-after"))).toBeGreaterThan(25);
    expect(api.requests).toHaveLength(1);
    // Slack's limits are per method: another method is still called.
    expect((await proxy(`${id}/conversations.list`)).status).toBe(200);
    expect(api.requests).toHaveLength(2);
  });

  it("a caller may ask for a bounded retry: idempotent methods, or others it declares safe", async () => {
    const { id } = await connection("proxy-salesforce");
    let busy = 0;
    api.handler = (_request, res) => {
      if (busy++ % 2 === 0) return void res.writeHead(503, { "retry-after": "1" }).end();
      res.writeHead(200).end("done");
    };
    const retried = await proxy(`${id}/a`, { headers: { "x-broker-retry": "2" } });
    expect(retried.status).toBe(200);
    expect(api.requests).toHaveLength(2);

    const unsafe = await proxy(`${id}/b`, { method: "POST", body: "x", headers: { "x-broker-retry": "2" } });
    expect(unsafe.status).toBe(503);
    expect(api.requests).toHaveLength(3);

    busy = 0;
    const declared = await proxy(`${id}/c`, { method: "POST", body: "x", headers: { "x-broker-retry": "2", "x-broker-retry-safe": "true" } });
    expect(declared.status).toBe(200);
    expect(api.requests).toHaveLength(5);

    // A wait longer than the caller allows is not waited out.
    api.handler = (_request, res) => void res.writeHead(429, { "retry-after": "5" }).end();
    const tooLong = await proxy(`${id}/d`, { headers: { "x-broker-retry": "2", "x-broker-retry-max-wait": "2" } });
    expect(tooLong.status).toBe(429);
    expect(api.requests).toHaveLength(6);
  });
});

describe("streaming", () => {
  it("a large response streams: the caller reads its start before the provider has sent the rest", async () => {
    const { id } = await connection("proxy-salesforce");
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    api.handler = async (_request, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      for (let i = 0; i < 8; i++) res.write(chunk);
      await released;
      for (let i = 0; i < 24; i++) res.write(chunk);
      res.end();
    };
    const response = await proxy(`${id}/export`);
    const reader = response.body!.getReader();
    let received = 0;
    while (received < 4 * chunk.length) received += (await reader.read()).value!.byteLength;
    release();
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      received += next.value.byteLength;
    }
    expect(received).toBe(32 * chunk.length);
  });

  it("a large upload streams through whole; one over BROKER_PROXY_MAX_BODY_BYTES is refused", async () => {
    const { id } = await connection("proxy-salesforce");
    const body = randomBytes(16 * 1024 * 1024);
    const response = await proxy(`${id}/upload`, { method: "PUT", body });
    expect(response.status).toBe(200);
    expect(api.requests[0]!.bodyBytes).toBe(body.length);
    expect(api.requests[0]!.bodySha256).toBe(createHash("sha256").update(body).digest("hex"));

    const tooLarge = await proxy(`${id}/upload`, { method: "PUT", body: Buffer.alloc(MAX_BODY_BYTES + 1) });
    expect(tooLarge.status).toBe(413);
    expect(await tooLarge.json()).toMatchObject({ error: "body_too_large" });
    expect(api.requests).toHaveLength(1);
  });
});

describe("refusals", () => {
  it.each([
    ["/a/../b", '"." or ".."'],
    ["/a/%2e%2e/b", '"." or ".."'],
    ["/a/%2E%2e%2Fb", '"." or ".."'],
    ["/a/..%2F..%2Fb", '"." or ".."'],
    ["/a/./b", '"." or ".."'],
    ["/a\\b", '"\\"'],
    ["/a/%5Cb", '"\\"'],
    ["//evil.example/x", "must not name a host"],
    ["/https:%2F%2Fevil.example", "must not name a scheme"],
    ["/a%0d%0aX-Injected:%20yes", "control characters"],
    ["/a%zz", "malformed percent-encoding"],
  ])("path escape %s is refused with a 4xx naming the reason, and nothing is sent", async (path, reason) => {
    const { id } = await connection("proxy-salesforce");
    const { status, body } = await rawRequest(`/proxy/${id}${path}`);
    expect(status).toBe(400);
    expect(JSON.parse(body)).toMatchObject({ error: "invalid_path" });
    expect(JSON.parse(body).message).toContain(reason);
    expect(api.requests).toHaveLength(0);
  });

  it("an encoded / inside a segment is forwarded verbatim (GitLab's project paths)", async () => {
    const { id } = await connection("proxy-salesforce");
    const { status } = await rawRequest(`/proxy/${id}/projects/group%2Fsub%2Fproject/issues?labels=a%2Cb`);
    expect(status).toBe(200);
    expect(api.requests[0]!.target).toBe("/services/data/projects/group%2Fsub%2Fproject/issues?labels=a%2Cb");
  });

  it("header smuggling (CR or LF in a header, two lengths) is refused before anything is sent", async () => {
    const { id } = await connection("proxy-salesforce");
    const url = new URL(broker.httpUrl);
    for (const smuggled of [
      `GET /proxy/${id}/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${acmeKey}\r\nX-A: one\rX-Injected: two\r\n\r\n`,
      `GET /proxy/${id}/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${acmeKey}\r\nX-A: one\nX-Injected: two\r\n\r\n`,
      `POST /proxy/${id}/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${acmeKey}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ]) {
      const answer = await new Promise<string>((resolve) => {
        const socket = netConnect(Number(url.port), url.hostname, () => socket.end(smuggled));
        let text = "";
        socket.on("data", (data) => {
          text += data.toString();
        });
        socket.on("close", () => resolve(text));
      });
      expect(answer).toMatch(/^HTTP\/1\.1 400/);
    }
    expect(api.requests).toHaveLength(0);
  });

  it("another organisation's connection is not found; an admin must name the organisation; no key is unauthenticated", async () => {
    const { id } = await connection("proxy-salesforce");
    const other = await proxy(`${id}/x`, { key: globexKey });
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ error: "not_found" });
    const admin = await proxy(`${id}/x`, { key: broker.adminToken });
    expect(admin.status).toBe(400);
    expect(await admin.json()).toMatchObject({ error: "organisation_required" });
    const adminWrongOrg = await proxy(`${id}/x`, { key: broker.adminToken, headers: { "x-broker-organisation": "globex" } });
    expect(adminWrongOrg.status).toBe(404);
    const anonymous = await fetch(`${broker.httpUrl}/proxy/${id}/x`);
    expect(anonymous.status).toBe(401);
    expect(api.requests).toHaveLength(0);
    const adminRightOrg = await proxy(`${id}/x`, { key: broker.adminToken, headers: { "x-broker-organisation": "acme" } });
    expect(adminRightOrg.status).toBe(200);
  });

  it("the SSRF policy holds: an API base on an address the allow-list does not name is refused, nothing sent", async () => {
    const { id } = await connection("proxy-salesforce");
    await broker.database.db.collection("connections").updateOne({ _id: id as never }, { $set: { "api.base_urls.0.url": `${internal.origin}/services/data` } });
    const response = await proxy(`${id}/x`);
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ error: "destination_refused" });
    expect(internal.requests).toHaveLength(0);
  });
});

describe("the per-instance token cache", () => {
  it("reuses a token for BROKER_PROXY_TOKEN_CACHE without reading it again; a deleted connection is refused after that", async () => {
    const { id } = await connection("proxy-salesforce");
    expect((await proxy(`${id}/x`)).status).toBe(200);
    await broker.connect(ConnectionService).deleteConnection({ organisationId: "acme", id });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const gone = await proxy(`${id}/x`);
    expect(gone.status).toBe(404);
    expect(await gone.json()).toMatchObject({ error: "not_found" });
    expect(api.requests).toHaveLength(1);
  });
});

describe("observability", () => {
  it("access logs name method, connection, provider, status and duration; metrics count by provider and status class; no token or query value is logged", async () => {
    const { id, token } = await connection("proxy-query");
    const before = broker.logs.length;
    await proxy(`${id}/orders.json?secret_filter=hidden-query-value`);
    const line = broker.logs.slice(before).find((entry) => entry.msg === "proxied call");
    expect(line).toMatchObject({ method: "GET", connection_id: id, provider: "proxy-query", status: 200, path: "/orders.json", via: "http" });
    expect(typeof line!.duration_ms).toBe("number");
    const text = JSON.stringify(broker.logs.slice(before));
    expect(text).not.toContain(token);
    expect(text).not.toContain("hidden-query-value");
    const metrics = await (await fetch(`${broker.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/broker_proxy_requests_total\{provider="proxy-query",status_class="2xx",answered_by="provider"\} [1-9]/);
  });
});

describe("over the gRPC method (ApiProxyService.CallApi)", () => {
  const rpc = () => broker.grpc(ApiProxyService, acmeKey);

  it("sends the method, path, query, headers and body with the token; returns status, filtered headers and body", async () => {
    const { id, token } = await connection("proxy-slack");
    api.handler = (request, res) =>
      void res.writeHead(201, { "content-type": "application/json", "set-cookie": "a=b", "x-trace": "t1" }).end(JSON.stringify({ got: request.bodyBytes }));
    const answer = await rpc().callApi({
      organisationId: "acme",
      connectionId: id,
      method: "POST",
      path: "/chat.postMessage",
      query: "pretty=1",
      headers: [
        { name: "Content-Type", value: "application/json" },
        { name: "Authorization", value: "Bearer caller-chosen" },
      ],
      body: new TextEncoder().encode('{"channel":"C1","text":"hi"}'),
    });
    expect(answer.status).toBe(201);
    expect(JSON.parse(new TextDecoder().decode(answer.body))).toEqual({ got: 28 });
    expect(answer.headers.find((header) => header.name === "x-trace")?.value).toBe("t1");
    expect(answer.headers.find((header) => header.name === "set-cookie")).toBeUndefined();
    const [request] = api.requests;
    expect(request).toMatchObject({ method: "POST", target: "/api/chat.postMessage?pretty=1", bodyBytes: 28 });
    expect(request!.headers.authorization).toBe(`Bearer ${token}`);
    expect(request!.headers["x-api-version"]).toBe("2024-01");
  });

  it("a 401 leads to one refresh and one retry; a remembered Retry-After is RESOURCE_EXHAUSTED with RetryInfo", async () => {
    const { id } = await connection("proxy-salesforce");
    const fresh = nextRefresh();
    api.handler = (request, res) => {
      if (request.target.includes("/limited")) return void res.writeHead(429, { "retry-after": "20" }).end();
      res.writeHead(request.headers.authorization === `Bearer ${fresh}` ? 200 : 401).end();
    };
    expect((await rpc().callApi({ organisationId: "acme", connectionId: id, path: "/sobjects" })).status).toBe(200);
    expect(provider.grants("refresh_token")).toHaveLength(1);
    expect(api.requests).toHaveLength(2);
    expect((await rpc().callApi({ organisationId: "acme", connectionId: id, path: "/limited" })).status).toBe(429);
    const error = await connectError(rpc().callApi({ organisationId: "acme", connectionId: id, path: "/limited" }));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(Number(error.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds)).toBeGreaterThan(15);
    expect(api.requests).toHaveLength(3);
  });

  it.each([
    [{ path: "/a/%2e%2e/b" }, "path", '"path" must not contain "." or ".." segments'],
    [{ path: "relative" }, "path", '"path" must start with "/"'],
    [{ path: "/a", query: "x=%0d%0a" }, "query", '"query" must not contain control characters'],
    [{ path: "/a", method: "get" }, "method", '"method" must be an HTTP method in capitals (GET, POST, …)'],
    [{ path: "/a", headers: [{ name: "X-A", value: "one\r\nX-Injected: two" }] }, "headers[0]", "\"headers[0]\" header 'X-A' has control characters"],
  ])("%o is INVALID_ARGUMENT naming %s, and nothing is sent", async (fields, _field, message) => {
    const { id } = await connection("proxy-salesforce");
    const error = await connectError(rpc().callApi({ organisationId: "acme", connectionId: id, ...fields }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(message);
    expect(api.requests).toHaveLength(0);
  });

  it("another organisation's connection is NOT_FOUND; a refused host is PERMISSION_DENIED; a large answer is RESOURCE_EXHAUSTED", async () => {
    const { id } = await connection("proxy-salesforce");
    const other = await connectError(broker.grpc(ApiProxyService, globexKey).callApi({ organisationId: "acme", connectionId: id, path: "/x" }));
    expect(other.code).toBe(Code.NotFound);
    const globex = await connectError(broker.grpc(ApiProxyService, globexKey).callApi({ organisationId: "globex", connectionId: id, path: "/x" }));
    expect(globex.code).toBe(Code.NotFound);
    expect(api.requests).toHaveLength(0);

    const second = await connection("proxy-salesforce");
    api.handler = (_request, res) => void res.writeHead(200).end(Buffer.alloc(5 * 1024 * 1024));
    const large = await connectError(rpc().callApi({ organisationId: "acme", connectionId: second.id, path: "/export" }));
    expect(large.code).toBe(Code.ResourceExhausted);
    expect(large.rawMessage).toContain("use the HTTP proxy");

    await broker.database.db.collection("connections").updateOne({ _id: id as never }, { $set: { "api.base_urls.0.url": `${internal.origin}/x` } });
    const refused = await connectError(rpc().callApi({ organisationId: "acme", connectionId: id, path: "/x" }));
    expect(refused.code).toBe(Code.PermissionDenied);
    expect(internal.requests).toHaveLength(0);
  });
});

describe("a credential's own API base (outside the catalog)", () => {
  async function customConnection(overrides: Record<string, unknown>): Promise<{ credentialId: string; id: string; token: string }> {
    const credentialId = await createScriptedCredential(broker, provider, overrides);
    const token = `at-${randomBytes(12).toString("base64url")}`;
    provider.behaviour = { kind: "json", body: { access_token: token, refresh_token: `rt-${randomBytes(12).toString("base64url")}`, token_type: "Bearer", expires_in: 3600 } };
    return { credentialId, id: await connectThroughCallback(broker, credentialId), token };
  }

  it("is where the token goes, placed as the credential says; it stays as recorded through a refresh", async () => {
    const { id, token } = await customConnection({
      apiBaseUrl: `${api.origin}/custom/v2`,
      apiTokenPlacement: { location: ApiTokenLocation.HEADER, name: "X-Token", scheme: "" },
    });
    const fresh = nextRefresh();
    api.handler = (request, res) => void res.writeHead(request.headers["x-token"] === fresh ? 200 : 401).end();
    expect((await proxy(`${id}/things?a=1`)).status).toBe(200);
    expect(api.requests.map((request) => [request.target, request.headers["x-token"]])).toEqual([
      ["/custom/v2/things?a=1", token],
      ["/custom/v2/things?a=1", fresh],
    ]);
  });

  it("changing it needs a new client secret; existing connections keep theirs until an admin moves them", async () => {
    const { credentialId, id } = await customConnection({ apiBaseUrl: `${api.origin}/old` });
    const update = (apiBaseUrl: string, paths: string[], moveConnections = false) =>
      credentials.updateCredential({
        credential: { id: credentialId, organisationId: "acme", apiBaseUrl, clientSecret: "scripted-client-secret" },
        updateMask: { paths },
        moveConnections,
      });
    const refused = await connectError(update(`${api.origin}/new`, ["api_base_url"]));
    expect(refused.code).toBe(Code.InvalidArgument);
    expect(refused.rawMessage).toBe('"credential.client_secret" is required to change "credential.api_base_url"');
    await update(`${api.origin}/new`, ["api_base_url", "client_secret"]);
    await proxy(`${id}/x`);
    expect(api.requests.at(-1)!.target).toBe("/old/x");
    await update(`${api.origin}/new`, [], true);
    // The instance reuses what the refresher handed out for BROKER_PROXY_TOKEN_CACHE (1 s).
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await proxy(`${id}/x`);
    expect(api.requests.at(-1)!.target).toBe("/new/x");
  });

  it.each([
    [{ apiBaseUrl: "https://api.example.com/v1?x=1" }, '"credential.api_base_url" must not have a query or fragment'],
    [{ apiTokenPlacement: { location: ApiTokenLocation.HEADER, name: "X-Token", scheme: "" } }, '"credential.api_token_placement" needs "credential.api_base_url"'],
    [{ apiBaseUrl: "https://api.example.com", apiTokenPlacement: { location: ApiTokenLocation.QUERY, name: "key", scheme: "Bearer" } }, '"credential.api_token_placement.scheme" must be empty for a query parameter'],
    [{ apiBaseUrl: "https://api.example.com", apiTokenPlacement: { location: ApiTokenLocation.HEADER, name: "X Token", scheme: "" } }, '"credential.api_token_placement.name" must be 1 to 64 characters of A-Z a-z 0-9 _ -'],
  ])("%o is INVALID_ARGUMENT", async (overrides, message) => {
    const error = await connectError(createScriptedCredential(broker, provider, overrides));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(message);
  });
});
