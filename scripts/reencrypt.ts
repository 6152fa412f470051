import { join } from "node:path";
import { applyLocalDefaults, ConfigError, loadConfig } from "../src/config.js";
import { reencryptAll } from "../src/maintenance/reencrypt-all.js";
import { SecretBox } from "../src/crypto/secret-box.js";
import { connectDatabase } from "../src/store/database.js";
import { type EmbeddedFerretDb, startEmbeddedFerretDb } from "../src/store/embedded-ferretdb.js";

/**
 * `npm run reencrypt`: moves every stored secret to the first key of BROKER_ENCRYPTION_KEYS.
 * Safe while brokers run against MONGODB_URI. In the embedded mode, stop the broker first: this
 * command starts the local FerretDB itself.
 */
try {
  const config = loadConfig();
  let embedded: EmbeddedFerretDb | undefined;
  if (config.mongodbUri === undefined) {
    applyLocalDefaults(config);
    embedded = await startEmbeddedFerretDb(join(config.dataDir, "ferretdb"));
  }
  const database = await connectDatabase(config.mongodbUri ?? embedded!.uri, config.mongodbDatabase);
  try {
    const report = await reencryptAll(database.db, new SecretBox(config.encryptionKeys!));
    console.log(JSON.stringify({ primary_key: config.encryptionKeys![0]!.id, moved: report }));
    if (report.busy > 0) process.exitCode = 3;
  } finally {
    await database.client.close();
    await embedded?.stop();
  }
} catch (error) {
  console.error(`oauth2-broker reencrypt: ${error instanceof ConfigError ? `invalid configuration: ${error.message}` : (error as Error).message}`);
  process.exitCode = 1;
}
