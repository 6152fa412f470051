import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { applyLocalDefaults, ConfigError, loadConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { startBroker } from "./server.js";
import { type EmbeddedFerretDb, startEmbeddedFerretDb } from "./store/embedded-ferretdb.js";

// V8 grows the heap by up to 4x after each full collection when allocation is fast, which under
// load left two thirds of a 130 MB heap committed and empty. A fixed 2x keeps peak RSS ~60 MB lower
// at the same throughput (BENCHMARKS.md). V8 reads this flag at every collection, so setting it
// here, before any load, works wherever the broker is started from.
setFlagsFromString("--heap-growing-percent=100");
// The young generation cannot be sized here (V8 fixes it at start-up), so `npm start` passes
// --max-semi-space-size=16: Node 24's V8 grows each semi-space to 64 MB under load, which put
// peak RSS at 430 MB where Node 20's 16 MB gave 180 (BENCHMARKS.md). Run the broker with it.

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`oauth2-broker: invalid configuration: ${error.message}`);
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);

  let embedded: EmbeddedFerretDb | undefined;
  let mongodbUri = config.mongodbUri;
  const tokenFromEnv = config.adminToken !== undefined;
  if (mongodbUri === undefined) {
    const { generated } = applyLocalDefaults(config);
    for (const path of generated) logger.warn({ path }, "generated a local secret for the embedded mode; set the variables to choose your own");
    embedded = await startEmbeddedFerretDb(join(config.dataDir, "ferretdb"));
    mongodbUri = embedded.uri;
    logger.info({ data_dir: config.dataDir }, "started the embedded FerretDB");
  }
  const { adminToken, encryptionKeys } = config;
  if (adminToken === undefined || encryptionKeys === undefined) throw new Error("unreachable: checked by loadConfig");

  const broker = await startBroker({ ...config, mongodbUri, adminToken, encryptionKeys }, logger).catch(async (error) => {
    await embedded?.stop();
    throw error;
  });

  const host = config.listenHost.includes(":") ? `[${config.listenHost}]` : config.listenHost;
  console.log(
    [
      "",
      "oauth2-broker is running",
      `  gRPC:          ${host}:${broker.grpcPort}`,
      `  HTTP gateway:  http://${host}:${broker.httpPort}  (Connect, gRPC-Web, /oauth2/callback)`,
      `  public URL:    ${config.publicUrl}${config.publicUrlFromPort ? "  (from BROKER_HTTP_PORT; set BROKER_PUBLIC_URL when clients reach the broker elsewhere)" : ""}`,
      `  console:       ${config.publicUrl}/console`,
      `  database:      ${embedded ? `embedded FerretDB under ${config.dataDir}/ferretdb` : "MONGODB_URI"}`,
      // Only the locally generated token is shown, with the file that keeps it: an operator-provided
      // one is already known and must not land in a terminal scroll-back or a log collector.
      ...(embedded
        ? [tokenFromEnv ? "  admin token:   set from BROKER_ADMIN_TOKEN" : `  admin token:   ${adminToken}  (kept in ${join(config.dataDir, "admin-token")})`]
        : []),
      "",
    ].join("\n"),
  );

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: finishing in-flight calls");
    await broker.close();
    await embedded?.stop();
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((error: unknown) => {
  console.error("oauth2-broker: failed to start:", error instanceof Error ? error.message : error);
  process.exit(1);
});
