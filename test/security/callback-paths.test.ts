import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { expectUnchanged } from "./support.js";

/**
 * Security issue 11, item 2: every organisation shared one redirect URI, and any organisation
 * could register a credential with another's (public) client ID and its own token URL. Its
 * authorize URL, sent to a user who had consented to the victim's client, brought back a code
 * issued to that client, which the broker sent to the attacker's token endpoint. With
 * `per_organisation_callback`, an organisation's flows use their own callback path, registered at
 * its providers, and a code arriving on one organisation's path completes no other's flow.
 */
let broker: TestBroker;
/** Acme's real provider, where acme's client is registered with acme's own callback. */
let provider: ScriptedProvider;
/** The token endpoint of globex, which copies acme's client ID into a credential of its own. */
let globexTokenEndpoint: ScriptedProvider;
const PUBLIC_URL = "http://127.0.0.1:8080";

beforeAll(async () => {
  [provider, globexTokenEndpoint] = await Promise.all([ScriptedProvider.start(), ScriptedProvider.start()]);
  broker = await startTestBroker({ BROKER_PUBLIC_URL: PUBLIC_URL });
  await broker.connect(OrganisationService).updateOrganisationSettings({
    settings: { organisationId: "acme", perOrganisationCallback: true },
    updateMask: { paths: ["per_organisation_callback"] },
  });
});
afterAll(async () => {
  await broker.close();
  await Promise.all([provider.close(), globexTokenEndpoint.close()]);
});
beforeEach(() => {
  provider.requests.length = 0;
  globexTokenEndpoint.requests.length = 0;
  provider.behaviour = { kind: "json", body: { access_token: "acme-path-at", token_type: "bearer" } };
  globexTokenEndpoint.behaviour = { kind: "json", body: { access_token: "globex-path-at", token_type: "bearer" } };
});

/** Starts a flow of `organisationId` with a credential at `tokenEndpoint`; returns its URL. */
async function startFlow(organisationId: string, tokenEndpoint: ScriptedProvider): Promise<URL> {
  const credentialId = await createScriptedCredential(broker, tokenEndpoint, { organisationId });
  const { url } = await broker.connect(ConnectionService).initialiseOAuth2Connection({
    organisationId,
    connectorId: "paths",
    credential: { id: credentialId, organisationId },
    authorizeUrl: `${provider.issuer}/authorize`,
    clientId: "client-1",
  });
  const parsed = new URL(url);
  recordSecrets(parsed.searchParams.get("state"));
  return parsed;
}

/** The provider's redirect: the browser arrives at `path` with the code and the state. */
async function arrive(path: string, state: string) {
  const response = await fetch(`${broker.httpUrl}${path}?state=${state}&code=code-${state.slice(0, 8)}`, { redirect: "manual" });
  return { status: response.status, body: await response.text() };
}

const connectionsOf = (organisationId: string) => broker.database.db.collection("connections").countDocuments({ organisation_id: organisationId });

describe("per_organisation_callback", () => {
  it("is a setting: read back as stored", async () => {
    const { settings } = await broker.connect(OrganisationService).getOrganisationSettings({ organisationId: "acme" });
    expect(settings?.perOrganisationCallback).toBe(true);
    const globex = await broker.connect(OrganisationService).getOrganisationSettings({ organisationId: "globex" });
    expect(globex.settings?.perOrganisationCallback).toBe(false);
  });

  it("gives the organisation's flows its own redirect URI, and its code completes there (sending that URI at the exchange)", async () => {
    const url = await startFlow("acme", provider);
    expect(url.searchParams.get("redirect_uri")).toBe(`${PUBLIC_URL}/oauth2/callback/acme`);
    const before = await connectionsOf("acme");
    expect((await arrive("/oauth2/callback/acme", url.searchParams.get("state")!)).status).toBe(200);
    expect(await connectionsOf("acme")).toBe(before + 1);
    expect(provider.grants("authorization_code")[0]?.form.get("redirect_uri")).toBe(`${PUBLIC_URL}/oauth2/callback/acme`);
  });

  it("leaves the shared callback working for the other organisations", async () => {
    const url = await startFlow("globex", globexTokenEndpoint);
    expect(url.searchParams.get("redirect_uri")).toBe(`${PUBLIC_URL}/oauth2/callback`);
    expect((await arrive("/oauth2/callback", url.searchParams.get("state")!)).status).toBe(200);
    expect(globexTokenEndpoint.grants("authorization_code")[0]?.form.get("redirect_uri")).toBe(`${PUBLIC_URL}/oauth2/callback`);
  });
});

describe("a code arriving on one organisation's path cannot complete another organisation's flow", () => {
  const refused = async (path: string, state: string, organisationId: string) => {
    const before = await connectionsOf(organisationId);
    const page = await arrive(path, state);
    expect(page.status).toBe(400);
    expect(page.body).toContain("This sign-in link has expired or was already used");
    expect(await connectionsOf(organisationId)).toBe(before);
    expect(provider.requests).toHaveLength(0);
    expect(globexTokenEndpoint.requests).toHaveLength(0);
  };

  it("the attack: globex's flow for acme's client ID, its code sent back to acme's callback, never reaches globex's token endpoint", async () => {
    // Globex copies acme's client ID, with its own token endpoint, and starts a flow. The provider
    // only redirects acme's client to acme's registered callback, so that is where the code lands.
    const url = await startFlow("globex", globexTokenEndpoint);
    await refused("/oauth2/callback/acme", url.searchParams.get("state")!, "globex");
  });

  it("acme's code on the shared path is refused", async () => {
    const url = await startFlow("acme", provider);
    await refused("/oauth2/callback", url.searchParams.get("state")!, "acme");
  });

  it("acme's code on another organisation's path is refused", async () => {
    const url = await startFlow("acme", provider);
    await refused("/oauth2/callback/globex", url.searchParams.get("state")!, "acme");
  });

  it("a path that is no organisation's callback is not found, and nothing changes", async () => {
    await expectUnchanged(broker.database.db, async () => {
      const response = await fetch(`${broker.httpUrl}/oauth2/callback/acme/extra?state=x&code=c`);
      expect(response.status).toBe(404);
      await response.text();
    });
  });
});

describe("UpdateOrganisationSettings", () => {
  it.each([".", ".."])("refuses per_organisation_callback for an organisation named %s (its path would not survive URL resolution)", async (organisationId) => {
    await expectUnchanged(broker.database.db, async () => {
      expect(
        await connectError(
          broker.connect(OrganisationService).updateOrganisationSettings({
            settings: { organisationId, perOrganisationCallback: true },
            updateMask: { paths: ["per_organisation_callback"] },
          }),
        ),
      ).toMatchObject({ code: Code.InvalidArgument, rawMessage: '"settings.per_organisation_callback" cannot be used by an organisation named "." or ".."' });
    });
  });
});
