import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { generateEncryptionKey, parseEncryptionKeys, SecretBox } from "../../src/crypto/secret-box.js";
import { privateKeyContext } from "../../src/crypto/secret-contexts.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

const root = join(import.meta.dirname, "../..");
const oldKey = generateEncryptionKey("old");
const newKey = generateEncryptionKey("new");
const database = `test_${randomUUID().replaceAll("-", "")}`;
let provider: ScriptedProvider;

beforeAll(async () => {
  provider = await ScriptedProvider.start();
});
afterAll(() => provider.close());

const brokerWith = (keys: string) => startTestBroker({ MONGODB_DATABASE: database, BROKER_ENCRYPTION_KEYS: keys });

/** Every ciphertext stored anywhere, by the key ID it names. */
async function keyIds(broker: TestBroker): Promise<string[]> {
  const db = broker.database.db;
  const ids: string[] = [];
  for (const c of await db.collection("credentials").find().toArray()) {
    ids.push(c.client_secret.split(".")[0]);
    if (c.previous_client_secret) ids.push(c.previous_client_secret.split(".")[0]);
    for (const key of c.keys ?? []) ids.push(key.private_key.split(".")[0]);
  }
  for (const c of await db.collection("connections").find().toArray()) {
    for (const field of ["access_token", "refresh_token"]) if (c[field]) ids.push(c[field].split(".")[0]);
  }
  for (const o of await db.collection("organisations").find().toArray()) for (const s of o.webhook_secrets ?? []) ids.push(s.split(".")[0]);
  return ids;
}

describe("encryption key rotation", () => {
  it("encrypts with the new key, still decrypts the old, and re-encrypts everything while running", async () => {
    // Data written under the old key alone.
    let broker = await brokerWith(oldKey);
    provider.behaviour = { kind: "json", body: { access_token: "rot-at", token_type: "bearer", expires_in: 3600, refresh_token: "rot-rt" } };
    const credentialId = await createScriptedCredential(broker, provider);
    const connectionId = await connectThroughCallback(broker, credentialId);
    await broker.connect(OrganisationService).rotateWebhookSecret({ organisationId: "acme" });
    // A rotation under way and a signing key: their ciphertexts move too.
    recordSecrets("scripted-client-secret-next");
    await broker.connect(CredentialService).rotateClientSecret({ organisationId: "acme", id: credentialId, clientSecret: "scripted-client-secret-next" });
    await broker.connect(CredentialService).addCredentialKey({ organisationId: "acme", credentialId, key: { case: "generate", value: {} } });
    expect(new Set(await keyIds(broker))).toEqual(new Set(["old"]));
    await broker.close();

    // The new key first, the old one after it: old data still works, new data uses the new key.
    broker = await brokerWith(`${newKey},${oldKey}`);
    expect((await broker.connect(ConnectionService).getAccessToken({ organisationId: "acme", connectionId })).accessToken).toBe("rot-at");
    await createScriptedCredential(broker, provider);
    expect(new Set(await keyIds(broker))).toEqual(new Set(["old", "new"]));

    // The command moves the rest while this broker keeps serving.
    const { stdout } = await promisify(execFile)(process.execPath, ["dist/scripts/reencrypt.js"], {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        MONGODB_URI: inject("mongodbUri"),
        MONGODB_DATABASE: database,
        BROKER_ADMIN_TOKEN: "a".repeat(40),
        BROKER_ENCRYPTION_KEYS: `${newKey},${oldKey}`,
      },
    });
    const report = JSON.parse(stdout);
    // oauthStates: the completed flow's (consumed) state stays in its window's collection until that is dropped.
    expect(report).toEqual({ primary_key: "new", moved: { credentials: 1, connections: 1, oauthStates: 1, organisations: 1, deviceCodes: 0, busy: 0 } });
    expect(new Set(await keyIds(broker))).toEqual(new Set(["new"]));
    await broker.close();

    // The old key can go.
    broker = await brokerWith(newKey);
    expect((await broker.connect(ConnectionService).getAccessToken({ organisationId: "acme", connectionId })).accessToken).toBe("rot-at");
    provider.behaviour = { kind: "json", body: { access_token: "rot-at-2", token_type: "bearer" } };
    await connectThroughCallback(broker, credentialId); // decrypts the moved client secrets
    // The moved private key still opens under its context with the new key alone.
    const [key] = (await broker.database.db.collection("credentials").findOne({ _id: credentialId as never }))!.keys;
    expect(JSON.parse(new SecretBox(parseEncryptionKeys(newKey)).decrypt(key.private_key, privateKeyContext(credentialId, key.kid))).d).toBeDefined();
    await broker.close();
  }, 60_000);
});
