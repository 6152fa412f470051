import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService, ConnectionStatus } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { createScriptedCredential } from "../support/connect-flow.js";
import { connectError } from "../support/errors.js";
import { ScriptedProvider } from "../support/scripted-provider.js";

/**
 * RFC 9700 §2.1 / §4.7: whoever holds an authorize URL can finish the flow. Initialised with an
 * end user, a connection only becomes usable when the caller's backend confirms that the person
 * who came back is the one who started.
 */
let broker: TestBroker;
let provider: ScriptedProvider;
let credentialId: string;
const RETURN_URL = "https://app.example.com/oauth/done";

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker({ BROKER_STATE_TTL: "10s" });
  provider.behaviour = { kind: "json", body: { access_token: "victim-at", token_type: "bearer", expires_in: 3600 } };
  credentialId = await createScriptedCredential(broker, provider);
  await broker.connect(OrganisationService).updateOrganisationSettings({
    settings: { organisationId: "acme", allowedReturnUrls: ["https://app.example.com/oauth"] },
    updateMask: { paths: ["allowed_return_urls"] },
  });
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});

const connections = () => broker.connect(ConnectionService);

/** Initialises for `endUserId`; whoever opens the URL completes it; returns where their browser lands. */
async function flowStartedBy(endUserId: string): Promise<{ connectionId: string; confirmation: string }> {
  const { url } = await connections().initialiseOAuth2Connection({
    organisationId: "acme",
    connectorId: "drive",
    credential: { id: credentialId, organisationId: "acme" },
    authorizeUrl: "https://idp.example/authorize",
    clientId: "client-1",
    returnUrl: RETURN_URL,
    endUserId,
  });
  const state = new URL(url).searchParams.get("state")!;
  // The browser that opens the URL signs in at the provider and comes back.
  const response = await fetch(`${broker.httpUrl}/oauth2/callback?state=${state}&code=c`, { redirect: "manual" });
  expect(response.status).toBe(303);
  const landed = new URL(response.headers.get("location")!);
  expect(landed.origin + landed.pathname).toBe(RETURN_URL);
  return { connectionId: landed.searchParams.get("connection_id")!, confirmation: landed.searchParams.get("confirmation")! };
}

describe("binding the flow to the person who started it", () => {
  it("activates the connection when the same end user confirms with the code", async () => {
    const { connectionId, confirmation } = await flowStartedBy("alice");
    expect(confirmation).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await connections().getConnection({ organisationId: "acme", id: connectionId })).connection?.status).toBe(ConnectionStatus.PENDING);
    expect(await connectError(connections().getAccessToken({ organisationId: "acme", connectionId }))).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "the connection is waiting for ConfirmConnection",
    });
    const { connection } = await connections().confirmConnection({ organisationId: "acme", connectionId, endUserId: "alice", confirmation });
    expect(connection?.status).toBe(ConnectionStatus.ACTIVE);
    expect((await connections().getAccessToken({ organisationId: "acme", connectionId })).accessToken).toBe("victim-at");
    const stored = await broker.database.db.collection("connections").findOne({ _id: connectionId as never });
    expect(JSON.stringify(stored)).not.toContain(confirmation);
  });

  it("never confirms a URL initialised for user A and completed in user B's browser", async () => {
    // Mallory starts a flow as herself and sends the URL to Bob. Bob signs in at the provider and
    // lands on the app, signed in as Bob: the app's backend confirms for the user it knows, Bob.
    const { connectionId, confirmation } = await flowStartedBy("mallory");
    expect(await connectError(connections().confirmConnection({ organisationId: "acme", connectionId, endUserId: "bob", confirmation }))).toMatchObject({
      code: Code.PermissionDenied,
      rawMessage: "wrong end user or confirmation for this connection",
    });
    // Mallory never saw the confirmation code, which went to Bob's browser.
    expect(
      await connectError(connections().confirmConnection({ organisationId: "acme", connectionId, endUserId: "mallory", confirmation: "guessed" })),
    ).toMatchObject({ code: Code.PermissionDenied });
    expect((await connections().getConnection({ organisationId: "acme", id: connectionId })).connection?.status).toBe(ConnectionStatus.PENDING);
    const stored = await broker.database.db.collection("connections").findOne({ _id: connectionId as never });
    expect(stored?.failed_confirmations).toBe(2);
  });

  it("deletes the connection after five wrong confirmations", async () => {
    const { connectionId, confirmation } = await flowStartedBy("carol");
    for (let i = 0; i < 5; i++) {
      await connectError(connections().confirmConnection({ organisationId: "acme", connectionId, endUserId: "carol", confirmation: `wrong-${i}` }));
    }
    expect(await connectError(connections().confirmConnection({ organisationId: "acme", connectionId, endUserId: "carol", confirmation }))).toMatchObject({
      code: Code.NotFound,
    });
    expect(await broker.database.db.collection("connections").countDocuments({ _id: connectionId as never })).toBe(0);
  });

  it("expires unconfirmed connections with their tokens", async () => {
    const { connectionId, confirmation } = await flowStartedBy("dave");
    await broker.database.db
      .collection("connections")
      .updateOne({ _id: connectionId as never }, { $set: { pending_expire_time: new Date(Date.now() - 1000) } });
    expect(await connectError(connections().confirmConnection({ organisationId: "acme", connectionId, endUserId: "dave", confirmation }))).toMatchObject({
      code: Code.PermissionDenied,
    });
    expect(await broker.database.db.collection("connections").countDocuments({ _id: connectionId as never })).toBe(0);
  });

  it("needs a return URL, which is the only way the confirmation reaches the caller", async () => {
    const error = await connectError(
      connections().initialiseOAuth2Connection({
        organisationId: "acme",
        connectorId: "drive",
        credential: { id: credentialId, organisationId: "acme" },
        authorizeUrl: "https://idp.example/authorize",
        clientId: "client-1",
        endUserId: "erin",
      }),
    );
    expect(error).toMatchObject({ code: Code.InvalidArgument, rawMessage: '"return_url" is required with "end_user_id"' });
  });
});
