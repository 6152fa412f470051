import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startEmbeddedFerretDb } from "../../src/store/embedded-ferretdb.js";
import { startTestBroker } from "../support/broker.js";
import { grpcJsClients, unary } from "../support/grpc-js.js";

const dir = mkdtempSync(join(tmpdir(), "oauth2-broker-health-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("gRPC health", () => {
  it("reports NOT_SERVING while the database is unreachable, and SERVING again once it is back", async () => {
    // A FerretDB of this test's own, so stopping it disturbs no other test.
    let ferretdb = await startEmbeddedFerretDb(dir);
    const broker = await startTestBroker({ MONGODB_URI: ferretdb.uri });
    const { health, close } = grpcJsClients(broker.grpcPort);
    const status = async () => (await unary(health, "Check", { service: "" })).response?.status;
    try {
      expect(await status()).toBe("SERVING");

      await ferretdb.stop();
      await broker.health.check();
      expect(await status()).toBe("NOT_SERVING");

      ferretdb = await startEmbeddedFerretDb(dir);
      await expect.poll(async () => (await broker.health.check(), status()), { timeout: 20_000, interval: 500 }).toBe("SERVING");
    } finally {
      close();
      await broker.close();
      await ferretdb.stop();
    }
  }, 60_000);
});
