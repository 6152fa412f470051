import { randomBytes, randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { inject } from "vitest";
import { recordLogLines, recordSecrets } from "./run-record.js";
import { type Config, loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { type Broker, startBroker } from "../../src/server.js";
import { generateEncryptionKey, parseEncryptionKeys } from "../../src/crypto/secret-box.js";

export interface TestBroker extends Broker {
  adminToken: string;
  httpUrl: string;
  grpcUrl: string;
  config: Config;
  /** Every log line the broker wrote, as parsed JSON. */
  logs: Array<Record<string, unknown>>;
  /** A Connect (JSON) client on the HTTP gateway, authenticated as admin. */
  connect<S extends DescService>(service: S, token?: string | null): Client<S>;
  /** A gRPC client (connect-node's) on the gRPC listener, authenticated as admin. */
  grpc<S extends DescService>(service: S, token?: string | null): Client<S>;
  /** A gRPC-Web client on the HTTP gateway, authenticated as admin. */
  grpcWeb<S extends DescService>(service: S, token?: string | null): Client<S>;
}

/**
 * Starts the real broker in this process on free loopback ports, against the run's FerretDB, in
 * a database of its own so test files cannot see each other's data.
 */
export async function startTestBroker(env: Record<string, string> = {}): Promise<TestBroker> {
  // A given BROKER_ADMIN_TOKEN is kept (a restart with the same token).
  const adminToken = env.BROKER_ADMIN_TOKEN ?? randomBytes(32).toString("base64url");
  recordSecrets(adminToken);
  const config = loadConfig({
    MONGODB_URI: inject("mongodbUri"),
    MONGODB_DATABASE: `test_${randomUUID().replaceAll("-", "")}`,
    BROKER_ADMIN_TOKEN: adminToken,
    BROKER_ENCRYPTION_KEYS: generateEncryptionKey("test1"),
    BROKER_HTTP_PORT: "0",
    BROKER_GRPC_PORT: "0",
    BROKER_PUBLIC_URL: "http://127.0.0.1:8080",
    BROKER_LOG_LEVEL: "debug",
    // The test providers and receivers listen on loopback, which the broker refuses otherwise.
    BROKER_OUTBOUND_ALLOWLIST: "127.0.0.1",
    // Every test request comes from 127.0.0.1; the limits have tests of their own.
    BROKER_CALLBACK_RATE_LIMIT: "100000",
    BROKER_RPC_RATE_LIMIT: "100000",
    ...env,
  });
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const text = chunk.toString("utf8");
      recordLogLines(text);
      for (const line of text.split("\n")) if (line !== "") logs.push(JSON.parse(line));
      callback();
    },
  });
  const broker = await startBroker(
    {
      ...config,
      mongodbUri: config.mongodbUri ?? "",
      adminToken,
      encryptionKeys: config.encryptionKeys ?? parseEncryptionKeys(generateEncryptionKey("test1")),
    },
    createLogger(config.logLevel, sink),
  );
  recordSecrets(...(config.encryptionKeys ?? []).map((key) => key.key.toString("base64")));
  const httpUrl = `http://127.0.0.1:${broker.httpPort}`;
  const grpcUrl = `http://127.0.0.1:${broker.grpcPort}`;
  // `undefined`: the admin token; `null`: no authorization header at all.
  const bearer = (token: string | null | undefined): Interceptor[] =>
    token === null
      ? []
      : [
          (next) => async (req) => {
            req.header.set("authorization", `Bearer ${token ?? adminToken}`);
            return next(req);
          },
        ];
  return {
    ...broker,
    adminToken,
    httpUrl,
    grpcUrl,
    config,
    logs,
    connect: (service, token) =>
      createClient(service, createConnectTransport({ baseUrl: httpUrl, httpVersion: "1.1", interceptors: bearer(token) })),
    grpc: (service, token) => createClient(service, createGrpcTransport({ baseUrl: grpcUrl, interceptors: bearer(token) })),
    grpcWeb: (service, token) =>
      createClient(service, createGrpcWebTransport({ baseUrl: httpUrl, httpVersion: "1.1", interceptors: bearer(token) })),
  };
}
