import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConnectionService, RevocationOutcome } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { ClientSecretSlot, TokenEndpointAuthMethod } from "../../gen/oauth2broker/v1/credential_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

const OLD_SECRET = "rotation-old-secret-5a1f";
const NEW_SECRET = "rotation-new-secret-c93e";
recordSecrets(OLD_SECRET, NEW_SECRET);

let broker: TestBroker;
let provider: ScriptedProvider;

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker({ BROKER_REFRESH_RETRY_MIN: "100ms" });
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});

let counter = 0;
/**
 * Tokens inside the broker's 60 s margin, so GetAccessToken refreshes once the last refresh's
 * token is no longer fresh (half its 2 s lifetime; issue 20, item 3).
 */
function shortLived() {
  counter++;
  return { access_token: `rot-at-${counter}`, token_type: "Bearer", expires_in: 2, refresh_token: `rot-rt-${counter}` };
}

beforeEach(() => {
  provider.acceptedClientSecrets = undefined;
  provider.refreshBehaviour = undefined;
});

/** A connection made with OLD_SECRET, whose credential is then rotated to NEW_SECRET. */
async function rotatedConnection(authMethod = TokenEndpointAuthMethod.CLIENT_SECRET_BASIC): Promise<{ credentialId: string; connectionId: string }> {
  provider.behaviour = { kind: "json", body: shortLived() };
  const credentialId = await createScriptedCredential(broker, provider, { clientSecret: OLD_SECRET, tokenEndpointAuthMethod: authMethod });
  const connectionId = await connectThroughCallback(broker, credentialId, "rotation");
  await broker.connect(CredentialService).rotateClientSecret({ organisationId: "acme", id: credentialId, clientSecret: NEW_SECRET });
  provider.behaviour = { kind: "json", body: shortLived() };
  provider.requests.length = 0;
  return { credentialId, connectionId };
}

/** The secret each recorded token request presented, Basic or in the body. */
function presentedSecrets(): string[] {
  return provider.requests.map((request) => {
    const basic = /^Basic (.+)$/.exec(request.authorization ?? "")?.[1];
    return basic === undefined ? (request.form.get("client_secret") ?? "") : decodeURIComponent(Buffer.from(basic, "base64").toString().split(":")[1]!);
  });
}

const getCredential = async (id: string) => (await broker.connect(CredentialService).getCredential({ organisationId: "acme", id })).credential!;

describe("client-secret rotation against a provider mid-rotation", () => {
  it("uses the newest secret when the provider accepts only it, and needs no fallback", async () => {
    const { credentialId, connectionId } = await rotatedConnection();
    provider.acceptedClientSecrets = [NEW_SECRET];
    const { accessToken } = await broker.connect(ConnectionService).getAccessToken({ organisationId: "acme", connectionId });
    expect(accessToken).toMatch(/^rot-at-/);
    expect(presentedSecrets()).toEqual([NEW_SECRET]);
    const credential = await getCredential(credentialId);
    expect(credential.clientSecretLastUsed).toBe(ClientSecretSlot.CURRENT);
    expect(credential.clientSecretFallbackTime).toBeUndefined();
  });

  it("retries once with the previous secret when the provider accepts only it, and records that it had to", async () => {
    const { credentialId, connectionId } = await rotatedConnection(TokenEndpointAuthMethod.CLIENT_SECRET_POST);
    provider.acceptedClientSecrets = [OLD_SECRET];
    const before = Date.now();
    const { accessToken } = await broker.connect(ConnectionService).getAccessToken({ organisationId: "acme", connectionId });
    expect(accessToken).toMatch(/^rot-at-/);
    // The same refresh twice: first with the new secret (refused), then with the old.
    expect(presentedSecrets()).toEqual([NEW_SECRET, OLD_SECRET]);
    expect(provider.requests[0]!.form.get("refresh_token")).toBe(provider.requests[1]!.form.get("refresh_token"));
    const credential = await getCredential(credentialId);
    expect(credential.clientSecretLastUsed).toBe(ClientSecretSlot.PREVIOUS);
    expect(Number(credential.clientSecretFallbackTime!.seconds) * 1000).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);

    // Once the provider takes the new secret, the record says so; the fallback time stays as history.
    provider.acceptedClientSecrets = [NEW_SECRET];
    provider.requests.length = 0;
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await broker.connect(ConnectionService).getAccessToken({ organisationId: "acme", connectionId });
    expect(presentedSecrets()).toEqual([NEW_SECRET]);
    expect((await getCredential(credentialId)).clientSecretLastUsed).toBe(ClientSecretSlot.CURRENT);
  });

  it("falls back for the code exchange and the revocation too", async () => {
    provider.behaviour = { kind: "json", body: shortLived() };
    const credentialId = await createScriptedCredential(broker, provider, { clientSecret: OLD_SECRET });
    await broker.connect(CredentialService).rotateClientSecret({ organisationId: "acme", id: credentialId, clientSecret: NEW_SECRET });
    provider.acceptedClientSecrets = [OLD_SECRET];
    provider.requests.length = 0;
    const connectionId = await connectThroughCallback(broker, credentialId, "rotation");
    expect(presentedSecrets()).toEqual([NEW_SECRET, OLD_SECRET]);
    provider.requests.length = 0;
    const deleted = await broker.connect(ConnectionService).deleteConnection({ organisationId: "acme", id: connectionId, revoke: true });
    expect(deleted.revocation).toBe(RevocationOutcome.REVOKED);
    expect(presentedSecrets()).toEqual([NEW_SECRET, OLD_SECRET]);
  });

  it("once the rotation ends, the previous secret is never sent: invalid_client is the provider's answer", async () => {
    const { credentialId, connectionId } = await rotatedConnection();
    await broker.connect(CredentialService).removePreviousClientSecret({ organisationId: "acme", id: credentialId });
    provider.acceptedClientSecrets = [OLD_SECRET];
    const error = await connectError(broker.connect(ConnectionService).getAccessToken({ organisationId: "acme", connectionId }));
    expect(error.code).toBe(Code.Unavailable);
    expect(presentedSecrets()).toEqual([NEW_SECRET]);
    const credential = await getCredential(credentialId);
    expect(credential.previousClientSecretSet).toBe(false);
    expect(credential.clientSecretLastUsed).toBe(ClientSecretSlot.UNSPECIFIED);
  });

  it("does not retry when both secrets are refused: two requests, then the provider's error", async () => {
    const { connectionId } = await rotatedConnection();
    provider.acceptedClientSecrets = ["neither-of-them-secret"];
    await connectError(broker.connect(ConnectionService).getAccessToken({ organisationId: "acme", connectionId }));
    expect(presentedSecrets()).toEqual([NEW_SECRET, OLD_SECRET]);
  });
});
