import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ApiKeyService } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { ConnectionService, RevocationOutcome } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { SECRET_DESTINATION_FIELDS } from "../../src/store/credentials.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectThroughCallback, createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";
import { type RecordedTokenRequest, ScriptedProvider } from "../support/scripted-provider.js";
import { expectUnchanged } from "./support.js";

/**
 * Security issue 11, item 1: with only an organisation's API key, a caller could point a
 * credential's token or revocation endpoint at a host it controls, and the broker then sent the
 * stored client secret (Basic auth) and the connections' tokens there. A stored secret must only
 * ever go to an endpoint that was in force when it was stored.
 */
let broker: TestBroker;
let provider: ScriptedProvider;
let attacker: ScriptedProvider;
let acmeKey: string;

const STORED_SECRET = "scripted-client-secret";
const ATTACKER_SECRET = "attacker-chosen-secret";
const REFRESH_TOKEN = "stored-refresh-token-1";
const ACCESS_TOKEN = "stored-access-token-1";

beforeAll(async () => {
  [provider, attacker] = await Promise.all([ScriptedProvider.start(), ScriptedProvider.start()]);
  broker = await startTestBroker({ BROKER_TOKEN_REQUEST_TIMEOUT: "1s" });
  acmeKey = (await broker.connect(ApiKeyService).createApiKey({ name: "acme backend", organisationId: "acme" })).key;
  recordSecrets(acmeKey, STORED_SECRET, ATTACKER_SECRET);
});
afterAll(async () => {
  await broker.close();
  await Promise.all([provider.close(), attacker.close()]);
});
beforeEach(() => {
  provider.requests.length = 0;
  attacker.requests.length = 0;
  // Expires at once (inside the 60 s margin), so the next GetAccessToken refreshes.
  provider.behaviour = { kind: "json", body: { access_token: ACCESS_TOKEN, token_type: "bearer", expires_in: 1, refresh_token: REFRESH_TOKEN } };
  attacker.behaviour = { kind: "json", body: { access_token: "attacker-at", token_type: "bearer", expires_in: 3600 } };
});

/** Everything a provider was sent: the decoded Basic credentials and every form value. */
function received(requests: RecordedTokenRequest[]): string {
  return requests
    .map((request) => {
      const basic = /^Basic (.+)$/.exec(request.authorization ?? "")?.[1];
      const decoded = basic === undefined ? "" : decodeURIComponent(Buffer.from(basic, "base64").toString());
      return `${decoded} ${[...request.form.values()].join(" ")}`;
    })
    .join("\n");
}

const credentials = (token?: string) => broker.connect(CredentialService, token);
const connections = (token?: string) => broker.connect(ConnectionService, token);

/** The organisation's key moves the credential's endpoint to the attacker, with a secret of its own. */
async function pointAt(credentialId: string, field: "token_url" | "revocation_url", url: string): Promise<void> {
  await credentials(acmeKey).updateCredential({
    credential: { id: credentialId, organisationId: "acme", clientSecret: ATTACKER_SECRET, tokenUrl: url, revocationUrl: url },
    updateMask: { paths: [field, "client_secret"] },
  });
}

describe("UpdateCredential: an endpoint changes only together with the client secret", () => {
  it.each(SECRET_DESTINATION_FIELDS)("naming %s without client_secret is INVALID_ARGUMENT and changes nothing", async (field) => {
    const credentialId = await createScriptedCredential(broker, provider, { issuer: provider.issuer });
    await expectUnchanged(broker.database.db, async () => {
      const error = await connectError(
        credentials(acmeKey).updateCredential({
          credential: { id: credentialId, organisationId: "acme", tokenUrl: attacker.tokenUrl, revocationUrl: attacker.revocationUrl, issuer: attacker.issuer },
          updateMask: { paths: [field, "name"] },
        }),
      );
      expect(error).toMatchObject({ code: Code.InvalidArgument, rawMessage: `"credential.client_secret" is required to change "credential.${field}"` });
    });
  });

  it("with the client secret, the change is made", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    const { credential } = await credentials(acmeKey).updateCredential({
      credential: { id: credentialId, organisationId: "acme", clientSecret: "rotated-with-endpoint", tokenUrl: attacker.tokenUrl },
      updateMask: { paths: ["token_url", "client_secret"] },
    });
    expect(credential?.tokenUrl).toBe(attacker.tokenUrl);
  });
});

describe("the stored client secret never reaches a new endpoint", () => {
  it("at the code exchange: a moved token_url only ever receives the secret given with it", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    // The attack as it was: move the endpoint alone, and let the next callback send the secret.
    const refused = await connectError(
      credentials(acmeKey).updateCredential({
        credential: { id: credentialId, organisationId: "acme", tokenUrl: attacker.tokenUrl },
        updateMask: { paths: ["token_url"] },
      }),
    );
    expect(refused.code).toBe(Code.InvalidArgument);
    await connectThroughCallback(broker, credentialId, "exchange-after-refused-move");
    expect(attacker.requests).toHaveLength(0);
    expect(received(provider.grants("authorization_code"))).toContain(STORED_SECRET);
    // With a secret of its own, the caller's endpoint receives that secret and never the stored one.
    await pointAt(credentialId, "token_url", attacker.tokenUrl);
    await connectThroughCallback(broker, credentialId, "exchange-after-move");
    expect(attacker.grants("authorization_code")).toHaveLength(1);
    expect(received(attacker.requests)).toContain(ATTACKER_SECRET);
    expect(received(attacker.requests)).not.toContain(STORED_SECRET);
  });
});

describe("a flow's code and PKCE verifier go only to the token endpoint in force when it started", () => {
  it("a token_url moved during the sign-in ends it (credential_changed), and nothing is sent", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    const { url } = await connections(acmeKey).initialiseOAuth2Connection({
      organisationId: "acme",
      connectorId: "moved-during-sign-in",
      credential: { id: credentialId, organisationId: "acme" },
      authorizeUrl: "https://provider.example/authorize",
      clientId: "client-1",
    });
    const state = new URL(url).searchParams.get("state")!;
    recordSecrets(state);
    await pointAt(credentialId, "token_url", attacker.tokenUrl);
    const page = await fetch(`${broker.httpUrl}/oauth2/callback?state=${state}&code=code-during-move`);
    expect(page.status).toBe(400);
    expect(await page.text()).toContain("The application&#39;s settings changed while you were signing in");
    expect(attacker.requests).toHaveLength(0);
    expect(provider.requests).toHaveLength(0);
    expect(await broker.database.db.collection("connections").countDocuments({ connector_id: "moved-during-sign-in" })).toBe(0);
  });
});

describe("a connection's tokens go only to the endpoints they came from", () => {
  it("refresh: after token_url moves, neither the refresh token nor any client secret is sent anywhere", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    const connectionId = await connectThroughCallback(broker, credentialId, "refresh-after-move");
    await pointAt(credentialId, "token_url", attacker.tokenUrl);
    provider.requests.length = 0;
    const error = await connectError(connections(acmeKey).getAccessToken({ organisationId: "acme", connectionId }));
    expect(error).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "the connection needs reauthorization (endpoint_changed) so the end user must connect again",
    });
    expect(attacker.requests).toHaveLength(0);
    // Nor does the new secret go to the old endpoint: it was not stored for that one.
    expect(provider.requests).toHaveLength(0);
  });

  it("refresh: a connection made after the change uses the new endpoint and secret", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    await pointAt(credentialId, "token_url", provider.tokenUrl);
    const connectionId = await connectThroughCallback(broker, credentialId, "refresh-new-connection");
    const { accessToken } = await connections(acmeKey).getAccessToken({ organisationId: "acme", connectionId });
    expect(accessToken).toBe(ACCESS_TOKEN);
    expect(provider.grants("refresh_token")).toHaveLength(1);
    expect(received(provider.grants("refresh_token"))).toContain(ATTACKER_SECRET);
  });

  it.each([
    ["the refresh token", { refresh_token: REFRESH_TOKEN }, REFRESH_TOKEN],
    ["the access token", {}, ACCESS_TOKEN],
  ])("revocation: after revocation_url moves, %s is not sent", async (_label, extra, token) => {
    provider.behaviour = { kind: "json", body: { access_token: ACCESS_TOKEN, token_type: "bearer", expires_in: 3600, ...extra } };
    const credentialId = await createScriptedCredential(broker, provider);
    const connectionId = await connectThroughCallback(broker, credentialId, "revoke-after-move");
    await pointAt(credentialId, "revocation_url", attacker.revocationUrl);
    provider.requests.length = 0;
    const response = await connections(acmeKey).deleteConnection({ organisationId: "acme", id: connectionId, revoke: true });
    expect(response).toMatchObject({
      revocation: RevocationOutcome.FAILED,
      revocationError: "the credential's endpoints changed since the connection was made",
    });
    expect(attacker.requests).toHaveLength(0);
    expect(provider.requests).toHaveLength(0);
    expect(received(attacker.requests)).not.toContain(token);
  });

  it("revocation at an unchanged endpoint still revokes (control)", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    const connectionId = await connectThroughCallback(broker, credentialId, "revoke-unchanged");
    const response = await connections(acmeKey).deleteConnection({ organisationId: "acme", id: connectionId, revoke: true });
    expect(response.revocation).toBe(RevocationOutcome.REVOKED);
    expect(received(provider.requests.filter((request) => request.path === "/revoke"))).toContain(REFRESH_TOKEN);
  });
});

describe("moving connections to new endpoints is an admin's explicit act", () => {
  it("an organisation's key may not move them: PERMISSION_DENIED, nothing changes", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    await connectThroughCallback(broker, credentialId, "move-denied");
    await expectUnchanged(broker.database.db, async () => {
      const error = await connectError(
        credentials(acmeKey).updateCredential({
          credential: { id: credentialId, organisationId: "acme", clientSecret: ATTACKER_SECRET, tokenUrl: attacker.tokenUrl },
          updateMask: { paths: ["token_url", "client_secret"] },
          moveConnections: true,
        }),
      );
      expect(error).toMatchObject({ code: Code.PermissionDenied, rawMessage: '"move_connections" needs an admin key' });
    });
  });

  it("the admin moves them, and a connection stopped by the change works again at the new endpoint", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    const connectionId = await connectThroughCallback(broker, credentialId, "moved-by-admin");
    const next = await ScriptedProvider.start();
    try {
      next.behaviour = { kind: "json", body: { access_token: "moved-at", token_type: "bearer", expires_in: 3600 } };
      await credentials().updateCredential({
        credential: { id: credentialId, organisationId: "acme", clientSecret: "admin-new-secret", tokenUrl: next.tokenUrl },
        updateMask: { paths: ["token_url", "client_secret"] },
      });
      expect((await connectError(connections().getAccessToken({ organisationId: "acme", connectionId }))).code).toBe(Code.FailedPrecondition);
      await credentials().updateCredential({ credential: { id: credentialId, organisationId: "acme" }, moveConnections: true });
      const { accessToken } = await connections().getAccessToken({ organisationId: "acme", connectionId });
      expect(accessToken).toBe("moved-at");
      expect(received(next.grants("refresh_token"))).toContain(REFRESH_TOKEN);
      expect(received(next.grants("refresh_token"))).toContain("admin-new-secret");
      const stored = await broker.database.db.collection("connections").findOne({ _id: connectionId as never });
      expect(stored).toMatchObject({ status: "ACTIVE", token_url: next.tokenUrl });
    } finally {
      await next.close();
    }
  });
});

describe("connections stored before endpoints were recorded", () => {
  async function legacyConnection(connectorId: string): Promise<{ credentialId: string; connectionId: string }> {
    const credentialId = await createScriptedCredential(broker, provider);
    const connectionId = await connectThroughCallback(broker, credentialId, connectorId);
    await broker.database.db.collection("connections").updateOne({ _id: connectionId as never }, { $unset: { token_url: "", revocation_url: "" } });
    return { credentialId, connectionId };
  }

  it("refresh at the credential's endpoint while it is unchanged, and record it", async () => {
    const { connectionId } = await legacyConnection("legacy-unchanged");
    expect((await connections().getAccessToken({ organisationId: "acme", connectionId })).accessToken).toBe(ACCESS_TOKEN);
    expect(provider.grants("refresh_token")).toHaveLength(1);
    const stored = await broker.database.db.collection("connections").findOne({ _id: connectionId as never });
    expect(stored).toMatchObject({ token_url: provider.tokenUrl, revocation_url: provider.revocationUrl });
  });

  it("send nothing once the credential changed after their tokens were stored", async () => {
    const { credentialId, connectionId } = await legacyConnection("legacy-changed");
    await pointAt(credentialId, "token_url", attacker.tokenUrl);
    provider.requests.length = 0;
    expect(await connectError(connections().getAccessToken({ organisationId: "acme", connectionId }))).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "the connection needs reauthorization (endpoint_changed) so the end user must connect again",
    });
    expect(attacker.requests).toHaveLength(0);
    expect(provider.requests).toHaveLength(0);
  });
});
