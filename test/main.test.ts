import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { CredentialService } from "../gen/oauth2broker/v1/credential_service_pb.js";
import { startBrokerProcess } from "./support/broker-process.js";
import { grpcJsClients, unary } from "./support/grpc-js.js";

const dataDir = mkdtempSync(join(tmpdir(), "oauth2-broker-main-"));

/** `npm start` with no MONGODB_URI: the embedded mode, data under the test's directory. */
const start = (env: Record<string, string> = {}) => startBrokerProcess({ BROKER_DATA_DIR: dataDir, ...env });

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("npm start (embedded mode)", () => {
  it("starts FerretDB under the data directory, prints where it listens and the admin token, and keeps data across restarts", async () => {
    const first = await start();
    expect(first.output()).toContain("oauth2-broker is running");
    expect(first.adminToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(join(dataDir, "admin-token")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, "encryption-keys")).mode & 0o777).toBe(0o600);

    const grpcJs = grpcJsClients(first.grpcPort);
    expect((await unary(grpcJs.health, "Check", { service: "" })).response?.status).toBe("SERVING");
    // A health Watch stream stays open; shutdown must end it instead of waiting for it.
    const watch = grpcJs.health.Watch({ service: "" });
    watch.on("error", () => {});
    await new Promise((resolve) => watch.once("data", resolve));

    const credentials = (port: number, token: string) =>
      createClient(
        CredentialService,
        createConnectTransport({
          baseUrl: `http://127.0.0.1:${port}`,
          httpVersion: "1.1",
          interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
        }),
      );
    const { credential } = await credentials(first.httpPort, first.adminToken).createCredential({
      credential: { organisationId: "acme", name: "Kept", clientId: "c", clientSecret: "s", tokenUrl: "https://idp.example/token" },
    });

    const started = Date.now();
    expect(await first.stop()).toBe(0);
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(first.output()).toContain('"msg":"stopped"');
    grpcJs.close();

    const second = await start();
    expect(second.adminToken).toBe(first.adminToken);
    const { credential: again } = await credentials(second.httpPort, second.adminToken).getCredential({
      organisationId: "acme",
      id: credential!.id,
    });
    expect(again?.name).toBe("Kept");
    expect(await second.stop()).toBe(0);
  }, 90_000);

  it("refuses to start against MONGODB_URI without an encryption key, naming the variable", async () => {
    const running = await start({ MONGODB_URI: "mongodb://127.0.0.1:1/", BROKER_ADMIN_TOKEN: "t".repeat(40) });
    await expect.poll(() => running.child.exitCode, { timeout: 10_000 }).toBe(2);
    expect(running.output()).toContain("oauth2-broker: invalid configuration: BROKER_ENCRYPTION_KEYS is required when MONGODB_URI is set");
  });
});
