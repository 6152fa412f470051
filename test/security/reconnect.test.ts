import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConnectionService, ConnectionStatus } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { recordSecrets } from "../support/run-record.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { countStates } from "../support/state-store.js";
import { expectUnchanged } from "./support.js";

/**
 * Security review, round two (issue 20): a reconnect must not hand a connection to an account
 * nobody proved (item 1), an older held grant must not overwrite a newer one (item 6), and a
 * PENDING connection's end-user binding must not be bypassed by a reconnect (also tightened).
 */
let broker: TestBroker;
let provider: ScriptedProvider;
const RETURN_URL = "https://app.example.com/oauth/done";

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker();
  await broker.connect(OrganisationService).updateOrganisationSettings({
    settings: { organisationId: "acme", allowedReturnUrls: ["https://app.example.com/oauth"] },
    updateMask: { paths: ["allowed_return_urls"] },
  });
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});
beforeEach(() => {
  provider.userinfo = undefined;
  provider.userinfoStatus = 200;
});

const connections = () => broker.connect(ConnectionService);
const stored = (id: string) => broker.database.db.collection("connections").findOne({ _id: id as never });
/** The connection once the relay has published its events (it clears `pending_events`). */
async function settled(id: string) {
  await expect.poll(async () => (await stored(id))!.pending_events.length, { timeout: 15_000 }).toBe(0);
  return stored(id);
}
const accessToken = async (connectionId: string) => (await connections().getAccessToken({ organisationId: "acme", connectionId })).accessToken;

let counter = 0;
/** The tokens the scripted provider issues next, distinct per call. */
function issue(): Record<string, unknown> {
  counter++;
  return { access_token: `rc-at-${counter}`, token_type: "Bearer", expires_in: 3600, refresh_token: `rc-rt-${counter}` };
}

interface Flow {
  credentialId: string;
  connectionId?: string;
  /** With it, `openid` is asked for and the provider's answer carries an ID token for `sub`. */
  sub?: string;
  endUserId?: string;
  returnUrl?: string;
}

/** InitialiseOAuth2Connection for `flow`, returning the state and nonce the provider would get. */
async function initialise(flow: Flow): Promise<{ state: string; nonce: string | null }> {
  const { url } = await connections().initialiseOAuth2Connection({
    organisationId: "acme",
    connectorId: "reconnect",
    credential: { id: flow.credentialId, organisationId: "acme" },
    authorizeUrl: "https://provider.example/authorize",
    clientId: "client-1",
    scopes: flow.sub === undefined ? ["read"] : ["openid", "read"],
    connectionId: flow.connectionId ?? "",
    endUserId: flow.endUserId ?? "",
    returnUrl: flow.returnUrl ?? (flow.endUserId === undefined ? "" : RETURN_URL),
  });
  const state = new URL(url).searchParams.get("state")!;
  recordSecrets(state);
  return { state, nonce: new URL(url).searchParams.get("nonce") };
}

/** Runs a flow to the callback, the provider answering with `tokens`; returns the callback's answer. */
async function authorize(flow: Flow, tokens: Record<string, unknown>): Promise<Response> {
  const { state, nonce } = await initialise(flow);
  const body = { ...tokens };
  if (flow.sub !== undefined) body.id_token = await provider.idToken({ aud: "client-1", nonce, sub: flow.sub, name: `${flow.sub} name` });
  provider.behaviour = { kind: "json", body };
  return fetch(`${broker.httpUrl}/oauth2/callback?state=${state}&code=code-${state.slice(0, 8)}`, { redirect: "manual" });
}

/** A new connection of `credentialId`, ACTIVE (or PENDING with an end user); its ID and what the return URL got. */
async function connect(flow: Flow, tokens: Record<string, unknown>): Promise<{ id: string; confirmation: string | null }> {
  const response = await authorize({ ...flow, returnUrl: RETURN_URL }, tokens);
  expect(response.status).toBe(303);
  const landed = new URL(response.headers.get("location")!).searchParams;
  expect(landed.get("error")).toBeNull();
  recordSecrets(landed.get("confirmation"));
  return { id: landed.get("connection_id")!, confirmation: landed.get("confirmation") };
}

describe("a reconnect proves the connection's provider account (issue 20, item 1)", () => {
  it("regression: a reconnect whose userinfo failed, left out the ID, or gave an over-long or non-string one took the new tokens under the old account", async () => {
    const credentialId = await createScriptedCredential(broker, provider, { issuer: provider.issuer, userinfoUrl: provider.userinfoUrl });
    const first = issue();
    const { id } = await connect({ credentialId, sub: "alice-id" }, first);
    expect((await stored(id))!.external_account).toEqual({ id: "alice-id", name: "alice-id name" });
    const before = await settled(id);

    const unverifiable: Array<{ status?: number; userinfo: Record<string, unknown> }> = [
      { status: 500, userinfo: { sub: "mallory-id" } },
      { userinfo: { email: "mallory@example.com", name: "Mallory" } },
      { userinfo: { sub: "a".repeat(513) } },
      { userinfo: { sub: { id: "alice-id" } } },
      { userinfo: { sub: true } },
      { userinfo: { sub: 1.5 } },
      { userinfo: { sub: "" } },
    ];
    for (const answer of unverifiable) {
      provider.userinfo = answer.userinfo;
      provider.userinfoStatus = answer.status ?? 200;
      // Without `openid` the account can only come from the userinfo endpoint.
      const redirected = await authorize({ credentialId, connectionId: id, returnUrl: RETURN_URL }, issue());
      expect(redirected.status).toBe(303);
      const landed = new URL(redirected.headers.get("location")!).searchParams;
      expect([landed.get("error"), landed.get("connection_id")]).toEqual(["account_unverified", null]);
      expect(await stored(id)).toEqual(before);
    }

    provider.userinfo = undefined; // 404
    const page = await authorize({ credentialId, connectionId: id }, issue());
    expect(page.status).toBe(409);
    expect(await page.text()).toContain(
      "The provider did not say which account you signed in with, so it could not be checked against this connection&#39;s. Nothing was changed.",
    );
    expect(await stored(id)).toEqual(before);
    expect(await accessToken(id)).toBe(first.access_token);
  });

  it("takes a reconnect whose userinfo names the same account", async () => {
    const credentialId = await createScriptedCredential(broker, provider, { issuer: provider.issuer, userinfoUrl: provider.userinfoUrl });
    const { id } = await connect({ credentialId, sub: "bob-id" }, issue());
    provider.userinfo = { sub: "bob-id", email: "bob@example.com" };
    const fresh = issue();
    expect((await authorize({ credentialId, connectionId: id }, fresh)).status).toBe(200);
    expect(await accessToken(id)).toBe(fresh.access_token);
    expect((await stored(id))!.external_account).toEqual({ id: "bob-id", email: "bob@example.com" });
  });

  it("refuses at InitialiseOAuth2Connection a reconnect of a connection with an account when nothing in the request could say who signs in", async () => {
    // An issuer (so `openid` works) but no userinfo endpoint and no catalog identity.
    const credentialId = await createScriptedCredential(broker, provider, { issuer: provider.issuer });
    const { id } = await connect({ credentialId, sub: "carol-id" }, issue());
    const before = await settled(id);

    const refused = await connectError(initialise({ credentialId, connectionId: id }));
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.rawMessage).toBe(
      '"connection_id" names a connection with a recorded provider account, but this request cannot learn who signs in: ' +
        'ask for "openid" (the credential needs an "issuer") or set the credential\'s "userinfo_url"',
    );
    expect(await countStates(broker.database.db, { connection_id: id })).toBe(0);
    expect(await stored(id)).toEqual(before);

    // With `openid` the ID token says who signed in: the reconnect goes ahead.
    const fresh = issue();
    expect((await authorize({ credentialId, connectionId: id, sub: "carol-id" }, fresh)).status).toBe(200);
    expect(await accessToken(id)).toBe(fresh.access_token);
    // A connection without a recorded account has nothing to prove.
    const { id: anonymous } = await connect({ credentialId }, issue());
    expect((await authorize({ credentialId, connectionId: anonymous }, issue())).status).toBe(200);
  });
});

describe("a PENDING connection's end-user binding (issue 20, also tighten)", () => {
  it("regression: a PENDING connection became ACTIVE without ConfirmConnection when reconnected without end_user_id", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    const { id } = await connect({ credentialId, endUserId: "alice" }, issue());
    expect((await stored(id))!.status).toBe("PENDING");

    await expectUnchanged(broker.database.db, async () => {
      const refused = await connectError(initialise({ credentialId, connectionId: id }));
      expect(refused.code).toBe(Code.FailedPrecondition);
      expect(refused.rawMessage).toBe('"end_user_id" is required to reconnect a connection waiting for ConfirmConnection');
    });

    // With an end user it is a new unconfirmed grant, waiting for ConfirmConnection as before.
    const fresh = issue();
    const { confirmation } = await connect({ credentialId, connectionId: id, endUserId: "alice" }, fresh);
    expect((await stored(id))!.status).toBe("PENDING");
    const confirmed = await connections().confirmConnection({ organisationId: "acme", connectionId: id, endUserId: "alice", confirmation: confirmation! });
    expect(confirmed.connection?.status).toBe(ConnectionStatus.ACTIVE);
    expect(await accessToken(id)).toBe(fresh.access_token);
  });
});

describe("a newer reconnect supersedes a held one (issue 20, item 6)", () => {
  const confirm = (connectionId: string, endUserId: string, confirmation: string) =>
    connections().confirmConnection({ organisationId: "acme", connectionId, endUserId, confirmation });

  async function expectSuperseded(connectionId: string, endUserId: string, confirmation: string): Promise<void> {
    await expectUnchanged(broker.database.db, async () => {
      const refused = await connectError(confirm(connectionId, endUserId, confirmation));
      expect(refused.code).toBe(Code.FailedPrecondition);
      expect(refused.rawMessage).toBe("a newer reconnect replaced the grant this confirmation was for");
    });
  }

  it("regression: confirming an older held reconnect after a newer one was applied put the older tokens back", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    const { id } = await connect({ credentialId }, issue());
    const { confirmation: held } = await connect({ credentialId, connectionId: id, endUserId: "user-1" }, issue());
    const newer = issue();
    expect((await authorize({ credentialId, connectionId: id }, newer)).status).toBe(200);
    expect(await accessToken(id)).toBe(newer.access_token);
    expect((await stored(id))!.reauthorization).toBeUndefined();

    await expectSuperseded(id, "user-1", held!);
    expect(await accessToken(id)).toBe(newer.access_token);
  });

  it("refuses a held confirmation that a newer held reconnect replaced, without counting it, and confirms the newer", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    const { id } = await connect({ credentialId }, issue());
    const { confirmation: older } = await connect({ credentialId, connectionId: id, endUserId: "user-1" }, issue());
    const newer = issue();
    const { confirmation: newest } = await connect({ credentialId, connectionId: id, endUserId: "user-1" }, newer);

    await expectSuperseded(id, "user-1", older!);
    expect((await stored(id))!.reauthorization.failed_confirmations).toBeUndefined();
    expect((await confirm(id, "user-1", newest!)).connection?.status).toBe(ConnectionStatus.ACTIVE);
    expect(await accessToken(id)).toBe(newer.access_token);
  });

  it("refuses the first confirmation of a PENDING connection whose unconfirmed grant a reconnect replaced", async () => {
    const credentialId = await createScriptedCredential(broker, provider);
    const { id, confirmation: first } = await connect({ credentialId, endUserId: "alice" }, issue());
    const newer = issue();
    const { confirmation: second } = await connect({ credentialId, connectionId: id, endUserId: "alice" }, newer);

    await expectSuperseded(id, "alice", first!);
    expect((await confirm(id, "alice", second!)).connection?.status).toBe(ConnectionStatus.ACTIVE);
    expect(await accessToken(id)).toBe(newer.access_token);
  });
});
