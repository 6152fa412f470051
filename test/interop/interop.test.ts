import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { generateEncryptionKey } from "../../src/crypto/secret-box.js";
import { freePort } from "../../src/store/embedded-ferretdb.js";
import { type BrokerProcess, startBrokerProcess } from "../support/broker-process.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";

/**
 * Other languages and tools against a running broker (its own process, on FerretDB): the Go and
 * Python clients generated from the proto, grpcurl through server reflection, plain HTTP+JSON,
 * and a browser-style gRPC-Web client.
 */
const root = join(import.meta.dirname, "../..");
const run = promisify(execFile);
let broker: BrokerProcess;
let env: Record<string, string>;
let publicUrl: string;

beforeAll(async () => {
  const port = await freePort();
  publicUrl = `http://127.0.0.1:${port}`;
  const adminToken = randomBytes(32).toString("base64url");
  recordSecrets(adminToken);
  broker = await startBrokerProcess({
    MONGODB_URI: inject("mongodbUri"),
    MONGODB_DATABASE: `test_${randomUUID().replaceAll("-", "")}`,
    BROKER_ADMIN_TOKEN: adminToken,
    BROKER_ENCRYPTION_KEYS: generateEncryptionKey("interop"),
    BROKER_HTTP_PORT: String(port),
    BROKER_PUBLIC_URL: publicUrl,
  });
  env = {
    ...(process.env as Record<string, string>),
    BROKER_GRPC_ADDR: `127.0.0.1:${broker.grpcPort}`,
    BROKER_ADMIN_TOKEN: adminToken,
    BROKER_PUBLIC_URL: publicUrl,
  };
});
afterAll(() => broker.stop());

async function expectSuccess(command: string, args: string[], options: { cwd: string; env?: Record<string, string> }) {
  try {
    return await run(command, args, { ...options, env: { ...env, ...options.env }, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(" ")} failed:\n${failed.stdout}\n${failed.stderr}`);
  }
}

describe("interop", () => {
  it("the generated Go client passes its tests (go test)", async () => {
    const { stdout } = await expectSuccess("go", ["test", "-count=1", "-v", "./..."], { cwd: join(root, "test/interop/go") });
    expect(stdout).toMatch(/--- PASS: TestInitialiseOAuth2Connection/);
    expect(stdout).toMatch(/--- PASS: TestErrors/);
    expect(stdout).toMatch(/--- PASS: TestClientSideRules/);
  }, 300_000);

  it("the generated Python client passes its tests (pytest)", async () => {
    const { stdout } = await expectSuccess(join(root, ".tools/venv/bin/python"), ["-m", "pytest", "-q", "test/interop/python"], {
      cwd: root,
      env: { PYTHONPATH: join(root, "gen/python") },
    });
    expect(stdout).toMatch(/3 passed/);
  }, 120_000);

  it("grpcurl lists, describes and calls the services through reflection, with no proto files", async () => {
    const grpcurl = join(root, ".tools/grpcurl");
    const address = `127.0.0.1:${broker.grpcPort}`;
    const { stdout } = await expectSuccess(grpcurl, ["-plaintext", address, "list"], { cwd: root });
    expect(stdout.split("\n")).toEqual(
      expect.arrayContaining([
        "oauth2broker.v1.ConnectionService",
        "oauth2broker.v1.CredentialService",
        "oauth2broker.v1.OrganisationService",
        "oauth2broker.v1.ApiKeyService",
        "grpc.health.v1.Health",
      ]),
    );
    const { stdout: described } = await expectSuccess(grpcurl, ["-plaintext", address, "describe", "oauth2broker.v1.InitialiseOAuth2ConnectionRequest"], { cwd: root });
    expect(described).toContain("string additional_params = 9;");
    const { stdout: created } = await expectSuccess(
      grpcurl,
      [
        "-plaintext",
        "-H",
        `authorization: Bearer ${env.BROKER_ADMIN_TOKEN}`,
        "-d",
        JSON.stringify({ credential: { organisation_id: "cli", name: "n", client_id: "c", client_secret: "grpcurl-secret", token_url: "https://idp.example/t" } }),
        address,
        "oauth2broker.v1.CredentialService/CreateCredential",
      ],
      { cwd: root },
    );
    const id = JSON.parse(created).credential.id as string;
    const { stdout: initialised } = await expectSuccess(
      grpcurl,
      [
        "-plaintext",
        "-H",
        `authorization: Bearer ${env.BROKER_ADMIN_TOKEN}`,
        "-d",
        JSON.stringify({ organisation_id: "cli", connector_id: "x", credential: { id, organisation_id: "cli" }, authorize_url: "https://idp.example/a", client_id: "c" }),
        address,
        "oauth2broker.v1.ConnectionService/InitialiseOAuth2Connection",
      ],
      { cwd: root },
    );
    expect(new URL(JSON.parse(initialised).url).searchParams.get("client_id")).toBe("c");
    const { stdout: health } = await expectSuccess(grpcurl, ["-plaintext", address, "grpc.health.v1.Health/Check"], { cwd: root });
    expect(JSON.parse(health)).toEqual({ status: "SERVING" });
  }, 60_000);

  it("answers the older v1alpha reflection API too, which some tools still use", async () => {
    const client = createClient(ReflectionV1Alpha, createGrpcTransport({ baseUrl: `http://127.0.0.1:${broker.grpcPort}` }));
    async function* requests() {
      yield { host: "", messageRequest: { case: "listServices" as const, value: "*" } };
      yield { host: "", messageRequest: { case: "fileContainingSymbol" as const, value: "oauth2broker.v1.ConnectionService.GetAccessToken" } };
    }
    const answers = [];
    for await (const answer of client.serverReflectionInfo(requests())) answers.push(answer);
    const [list, file] = answers;
    expect(list?.messageResponse.case).toBe("listServicesResponse");
    expect(file?.messageResponse.case).toBe("fileDescriptorResponse");
    const names = (file?.messageResponse.value as { fileDescriptorProto: Uint8Array[] }).fileDescriptorProto.map(
      (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
    );
    expect(names).toEqual(expect.arrayContaining(["oauth2broker/v1/connection_service.proto", "google/protobuf/timestamp.proto"]));
  });

  it("plain HTTP+JSON callers use POST /o/{org}/connectors/{connector}/oauth2/initialise", async () => {
    const http = (path: string, init: RequestInit = {}) => fetch(`${publicUrl}${path}`, init);
    const headers = { authorization: `Bearer ${env.BROKER_ADMIN_TOKEN}`, "content-type": "application/json" };
    const { credential } = (await (
      await http("/oauth2broker.v1.CredentialService/CreateCredential", {
        method: "POST",
        headers,
        body: JSON.stringify({ credential: { organisationId: "rest", name: "n", clientId: "rest-client", clientSecret: "rest-secret", tokenUrl: "https://idp.example/t" } }),
      })
    ).json()) as { credential: { id: string } };
    const body = {
      credential: { id: credential.id, organisationId: "rest" },
      authorizeUrl: "https://idp.example/authorize",
      clientId: "rest-client",
      scopes: ["read"],
      disableOfflineAccess: true,
      prompt: "consent",
      additionalParams: "hd=example.com",
    };
    const ok = await http("/o/rest/connectors/legacy/oauth2/initialise", { method: "POST", headers, body: JSON.stringify(body) });
    expect(ok.status).toBe(200);
    const { url } = (await ok.json()) as { url: string };
    const q = new URL(url).searchParams;
    expect([q.get("scope"), q.get("prompt"), q.get("hd"), q.get("client_id")]).toEqual(["read", "consent", "example.com", "rest-client"]);

    const cases: Array<[RequestInit, number, string, string]> = [
      [{ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }, 401, "unauthenticated", 'missing bearer token in the "authorization" header'],
      [{ method: "POST", headers, body: JSON.stringify({ ...body, prompt: "none login" }) }, 400, "invalid_argument", '"prompt" must not combine "none" with other values'],
      [{ method: "POST", headers, body: JSON.stringify({ ...body, credential: { id: "missing", organisationId: "rest" } }) }, 404, "not_found", "credential not found"],
      [{ method: "POST", headers, body: JSON.stringify({ ...body, clientId: "other" }) }, 400, "failed_precondition", '"client_id" does not match the credential\'s client ID'],
      [{ method: "POST", headers, body: "{not json" }, 400, "invalid_argument", "the body is not JSON"],
    ];
    for (const [init, status, code, message] of cases) {
      const response = await http("/o/rest/connectors/legacy/oauth2/initialise", init);
      expect(response.status, message).toBe(status);
      expect(await response.json()).toMatchObject({ code, message });
    }
    const invalid = (await (await http("/o/rest/connectors/legacy/oauth2/initialise", { method: "POST", headers, body: JSON.stringify({ ...body, prompt: "none login" }) })).json()) as { details: Array<{ type: string }> };
    expect(invalid.details[0]?.type).toBe("google.rpc.BadRequest");
  });

  it("serves an OpenAPI document generated from the proto at /openapi.json", async () => {
    const response = await fetch(`${publicUrl}/openapi.json`);
    expect(response.status).toBe(200);
    const document = (await response.json()) as { openapi: string; paths: Record<string, any>; security: unknown };
    expect(document.openapi).toBe("3.0.3");
    const operation = document.paths["/o/{organisationId}/connectors/{connectorId}/oauth2/initialise"]?.post;
    expect(operation.operationId).toBe("ConnectionService_InitialiseOAuth2Connection");
    expect(operation.parameters.map((p: { name: string }) => p.name)).toEqual(["organisationId", "connectorId"]);
    expect(document.security).toEqual([{ bearer: [] }]);
  });

  it("a gRPC-Web client (@connectrpc/connect-web, as in a browser) works on the HTTP gateway", async () => {
    const transport = createGrpcWebTransport({
      baseUrl: publicUrl,
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${env.BROKER_ADMIN_TOKEN}`), next(req))],
    });
    const { credential } = await createClient(CredentialService, transport).createCredential({
      credential: { organisationId: "web", name: "n", clientId: "web-client", clientSecret: "web-secret", tokenUrl: "https://idp.example/t" },
    });
    const { url } = await createClient(ConnectionService, transport).initialiseOAuth2Connection({
      organisationId: "web",
      connectorId: "c",
      credential: { id: credential!.id, organisationId: "web" },
      authorizeUrl: "https://idp.example/authorize",
      clientId: "web-client",
    });
    expect(new URL(url).searchParams.get("client_id")).toBe("web-client");
    const error = await connectError(createClient(ConnectionService, transport).initialiseOAuth2Connection({ organisationId: "web" }));
    expect(error.rawMessage).toBe('"connector_id" is required and 2 more violations');
  });
});
