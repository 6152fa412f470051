import { createHash } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { SecretBox } from "../../src/crypto/secret-box.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectError } from "../support/errors.js";
import { bearer, grpc, grpcJsClients, type GrpcJsClients, unary } from "../support/grpc-js.js";
import { countStates, stateCollection } from "../support/state-store.js";
import { codeVerifierContext } from "../../src/crypto/secret-contexts.js";

let broker: TestBroker;
let grpcJs: GrpcJsClients;
let credentialId: string;
let otherOrgCredentialId: string;
let noPkceCredentialId: string;

beforeAll(async () => {
  broker = await startTestBroker({ BROKER_PUBLIC_URL: "https://broker.example.com" });
  grpcJs = grpcJsClients(broker.grpcPort);
  const credentials = broker.connect(CredentialService);
  const create = async (organisationId: string, disablePkce = false) => {
    const { credential } = await credentials.createCredential({
      credential: {
        organisationId,
        name: "Provider",
        clientId: "client-abc",
        clientSecret: "top-secret",
        tokenUrl: "https://idp.example.com/token",
        issuer: "https://idp.example.com",
        disablePkce,
      },
    });
    return credential!.id;
  };
  await broker.connect(OrganisationService).updateOrganisationSettings({
    settings: { organisationId: "acme", allowedReturnUrls: ["https://app.example.com/connected"] },
    updateMask: { paths: ["allowed_return_urls"] },
  });
  credentialId = await create("acme");
  otherOrgCredentialId = await create("globex");
  noPkceCredentialId = await create("acme", true);
});
afterAll(async () => {
  grpcJs.close();
  await broker.close();
});

function request(overrides: Record<string, unknown> = {}) {
  return {
    organisation_id: "acme",
    connector_id: "google-drive",
    credential: { id: credentialId, organisation_id: "acme" },
    authorize_url: "https://idp.example.com/authorize?tenant=acme",
    client_id: "client-abc",
    scopes: ["openid", "email", "openid"],
    additional_params: "access_type=offline&login_hint=a%40b.example",
    ...overrides,
  };
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("base64url");


describe("InitialiseOAuth2Connection over gRPC (@grpc/grpc-js)", () => {
  it("returns a URL that follows every rule, and stores only the state's hash", async () => {
    const before = Date.now();
    const { response, error } = await unary(grpcJs.connections, "InitialiseOAuth2Connection", request(), bearer(broker.adminToken));
    expect(error).toBeUndefined();
    const url = new URL(response.url);
    expect(url.origin + url.pathname).toBe("https://idp.example.com/authorize");
    expect([...url.searchParams.keys()]).toEqual([
      "tenant",
      "response_type",
      "client_id",
      "redirect_uri",
      "state",
      "scope",
      "prompt",
      "code_challenge",
      "code_challenge_method",
      "nonce",
      "access_type",
      "login_hint",
    ]);
    const q = url.searchParams;
    expect(q.get("response_type")).toBe("code");
    expect(q.get("client_id")).toBe("client-abc");
    expect(q.get("redirect_uri")).toBe("https://broker.example.com/oauth2/callback");
    expect(q.get("scope")).toBe("openid email offline_access");
    expect(q.get("prompt")).toBe("login");
    expect(q.get("code_challenge_method")).toBe("S256");
    expect(q.get("login_hint")).toBe("a@b.example");
    const state = q.get("state")!;
    expect(state).toMatch(/^[1-9a-z][0-9a-z]*\.[A-Za-z0-9_-]{43}$/); // its creation window, then 32 random bytes, base64url
    expect(q.get("nonce")).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const expireTime = Number(response.expire_time.seconds) * 1000;
    expect(expireTime).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 600_000);
    expect(expireTime).toBeLessThanOrEqual(Date.now() + 600_000);

    const stored = await stateCollection(broker.database.db, state).findOne({ _id: sha256(state) as never });
    expect(stored).toMatchObject({
      organisation_id: "acme",
      connector_id: "google-drive",
      credential_id: credentialId,
      client_id: "client-abc",
      redirect_uri: "https://broker.example.com/oauth2/callback",
      scopes: ["openid", "email", "offline_access"],
      nonce: q.get("nonce"),
    });
    expect(stored?.expire_time.getTime()).toBe(timestampDateMs(response.expire_time));
    const text = JSON.stringify(stored);
    expect(text).not.toContain(state);
    // The verifier is encrypted, bound to this state, and is the one behind the challenge.
    const verifier = new SecretBox(broker.config.encryptionKeys!).decrypt(stored!.code_verifier, codeVerifierContext(sha256(state)));
    expect(text).not.toContain(verifier);
    expect(sha256(verifier)).toBe(q.get("code_challenge"));
  });

  it("makes a new single-use state for every call", async () => {
    const urls = await Promise.all(
      Array.from({ length: 10 }, () => unary(grpcJs.connections, "InitialiseOAuth2Connection", request(), bearer(broker.adminToken))),
    );
    const states = new Set(urls.map(({ response }) => new URL(response.url).searchParams.get("state")));
    expect(states.size).toBe(10);
  });

  it("leaves PKCE out for a credential that disables it", async () => {
    const { response } = await unary(
      grpcJs.connections,
      "InitialiseOAuth2Connection",
      request({ credential: { id: noPkceCredentialId, organisation_id: "acme" }, scopes: ["email"] }),
      bearer(broker.adminToken),
    );
    const q = new URL(response.url).searchParams;
    expect(q.has("code_challenge")).toBe(false);
    expect(q.has("nonce")).toBe(false);
    const stored = await stateCollection(broker.database.db, q.get("state")!).findOne({ _id: sha256(q.get("state")!) as never });
    expect(stored?.code_verifier).toBeUndefined();
  });

  it.each([
    ["an unknown credential", { credential: { id: "0190a0a0-0000-7000-8000-000000000000", organisation_id: "acme" } }],
    ["another organisation's credential", { credential: { id: "OTHER", organisation_id: "acme" } }],
    ["a credential reference naming another organisation", { credential: { id: "OTHER", organisation_id: "globex" } }],
  ])("is NOT_FOUND for %s, and stores nothing", async (_label, overrides) => {
    const credential = { ...(overrides.credential as { id: string; organisation_id: string }) };
    if (credential.id === "OTHER") credential.id = otherOrgCredentialId;
    const before = await countStates(broker.database.db);
    const { error } = await unary(grpcJs.connections, "InitialiseOAuth2Connection", request({ credential }), bearer(broker.adminToken));
    expect(error?.code).toBe(grpc.status.NOT_FOUND);
    expect(error?.details).toBe("credential not found");
    expect(await countStates(broker.database.db)).toBe(before);
  });

  it("is FAILED_PRECONDITION when client_id differs from the credential's", async () => {
    const { error } = await unary(grpcJs.connections, "InitialiseOAuth2Connection", request({ client_id: "someone-else" }), bearer(broker.adminToken));
    expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error?.details).toBe('"client_id" does not match the credential\'s client ID');
  });

  it.each([
    [{ organisation_id: "" }, '"organisation_id" is required'],
    [{ connector_id: "has space" }, '"connector_id" must be 1 to 128 characters of A-Z a-z 0-9 . _ -'],
    [{ credential: null }, '"credential" is required'],
    [{ credential: { id: "", organisation_id: "acme" } }, '"credential.id" is required'],
    [{ client_id: "" }, '"client_id" is required'],
    [{ authorize_url: "http://idp.example.com/authorize" }, '"authorize_url" must be an https URL (http is allowed only for loopback hosts)'],
    [{ authorize_url: "https://idp.example.com/authorize#x" }, '"authorize_url" must not contain a fragment'],
    [{ scopes: ["a b"] }, '"scopes[0]" must be a scope token (printable ASCII without space or " or \\)'],
    [{ prompt: "none login" }, '"prompt" must not combine "none" with other values'],
    [{ additional_params: "state=evil" }, '"additional_params" must not set "state"'],
    [{ additional_params: "tenant=other" }, '"additional_params" must not repeat "tenant" from "authorize_url"'],
    [{ additional_params: "a=%ZZ" }, '"additional_params" has a malformed percent-encoding'],
    [{ return_url: "not a url" }, '"return_url" must be an absolute URL'],
    [{ return_url: "https://evil.example/connected" }, '"return_url" is not in the organisation\'s allowed return URLs'],
    [{ return_url: "https://app.example.com/connectedx" }, '"return_url" is not in the organisation\'s allowed return URLs'],
    [{ return_url: "https://app.example.com/connected#x" }, '"return_url" must not contain a fragment'],
  ])("is INVALID_ARGUMENT naming the field for %j, and stores nothing", async (overrides, message) => {
    const before = await countStates(broker.database.db);
    const { error } = await unary(grpcJs.connections, "InitialiseOAuth2Connection", request(overrides), bearer(broker.adminToken));
    expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error?.details).toBe(message);
    expect(await countStates(broker.database.db)).toBe(before);
  });

  it("is FAILED_PRECONDITION for openid with a credential that has no issuer", async () => {
    const { credential } = await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "acme", name: "No issuer", clientId: "client-abc", clientSecret: "s", tokenUrl: "https://idp.example.com/token" },
    });
    const { error } = await unary(
      grpcJs.connections,
      "InitialiseOAuth2Connection",
      request({ credential: { id: credential!.id, organisation_id: "acme" } }),
      bearer(broker.adminToken),
    );
    expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error?.details).toBe('"scopes" has "openid" but the credential has no "issuer" to verify ID tokens');
  });

  it("is UNAUTHENTICATED without a token", async () => {
    const { error } = await unary(grpcJs.connections, "InitialiseOAuth2Connection", request());
    expect(error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(error?.details).toBe('missing bearer token in the "authorization" header');
    const wrong = await unary(grpcJs.connections, "InitialiseOAuth2Connection", request(), bearer("wrong-token"));
    expect(wrong.error?.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("reports SERVING over standard gRPC health checking, without a token", async () => {
    expect((await unary(grpcJs.health, "Check", { service: "" })).response?.status).toBe("SERVING");
    expect((await unary(grpcJs.health, "Check", { service: "oauth2broker.v1.ConnectionService" })).response?.status).toBe("SERVING");
    expect((await unary(grpcJs.health, "Check", { service: "no.such.Service" })).error?.code).toBe(grpc.status.NOT_FOUND);
  });

  it("streams health with Watch", async () => {
    const call = grpcJs.health.Watch({ service: "" });
    const first = await new Promise<any>((resolve, reject) => {
      call.once("data", resolve);
      call.once("error", reject);
    });
    expect(first.status).toBe("SERVING");
    call.cancel();
  });
});

describe("InitialiseOAuth2Connection over Connect and gRPC-Web", () => {
  const connectRequest = () => ({
    organisationId: "acme",
    connectorId: "github",
    credential: { id: credentialId, organisationId: "acme" },
    authorizeUrl: "https://idp.example.com/authorize",
    clientId: "client-abc",
    scopes: ["repo"],
    disableOfflineAccess: true,
    prompt: "",
    returnUrl: "https://app.example.com/connected/done?tab=apps",
  });

  it("returns the same kind of URL over Connect", async () => {
    const response = await broker.connect(ConnectionService).initialiseOAuth2Connection(connectRequest());
    const q = new URL(response.url).searchParams;
    expect(q.get("scope")).toBe("repo");
    expect(q.has("prompt")).toBe(false);
    const stored = await stateCollection(broker.database.db, q.get("state")!).findOne({ _id: sha256(q.get("state")!) as never });
    expect(stored?.return_url).toBe("https://app.example.com/connected/done?tab=apps");
    expect(stored?.expire_time.getTime()).toBe(timestampDate(response.expireTime!).getTime());
  });

  it("works over gRPC-Web on the HTTP gateway", async () => {
    const response = await broker.grpcWeb(ConnectionService).initialiseOAuth2Connection(connectRequest());
    expect(new URL(response.url).searchParams.get("client_id")).toBe("client-abc");
  });

  it("works over gRPC with connect-node's client too", async () => {
    const error = await connectError(broker.grpc(ConnectionService).initialiseOAuth2Connection({ ...connectRequest(), clientId: "x" }));
    expect(error.code).toBe(Code.FailedPrecondition);
  });
});

describe("logs", () => {
  it("carry a request ID per call and never a secret, state or verifier", async () => {
    const { response } = await unary(grpcJs.connections, "InitialiseOAuth2Connection", request(), bearer(broker.adminToken));
    const state = new URL(response.url).searchParams.get("state")!;
    const stored = await stateCollection(broker.database.db, state).findOne({ _id: sha256(state) as never });
    const verifier = new SecretBox(broker.config.encryptionKeys!).decrypt(stored!.code_verifier, codeVerifierContext(sha256(state)));
    const text = JSON.stringify(broker.logs);
    const rpcLines = broker.logs.filter((line) => line.msg === "rpc");
    expect(rpcLines.length).toBeGreaterThan(10);
    for (const line of rpcLines) expect(line.request_id).toMatch(/^[0-9a-f-]{36}$/);
    for (const secret of ["top-secret", state, verifier, broker.adminToken]) expect(text).not.toContain(secret);
  });
});

function timestampDateMs(timestamp: { seconds: string; nanos: number }): number {
  return Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1e6);
}
