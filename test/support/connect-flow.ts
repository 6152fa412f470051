import { expect } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { recordSecrets } from "./run-record.js";
import type { ScriptedProvider } from "./scripted-provider.js";

/** What a broker looks like from a test: a Connect client factory, its gateway URL, its database. */
export interface BrokerHandle {
  httpUrl: string;
  connect: import("./broker.js").TestBroker["connect"];
  database: import("../../src/store/database.js").Database;
}

export async function createScriptedCredential(
  broker: BrokerHandle,
  provider: ScriptedProvider,
  overrides: Record<string, unknown> = {},
): Promise<string> {
  const { credential } = await broker.connect(CredentialService).createCredential({
    credential: {
      organisationId: "acme",
      name: "Scripted",
      clientId: "client-1",
      clientSecret: "scripted-client-secret",
      tokenUrl: provider.tokenUrl,
      revocationUrl: provider.revocationUrl,
      ...overrides,
    },
  });
  return credential!.id;
}

/**
 * Makes a connection the way a user would: InitialiseOAuth2Connection, then the provider's
 * redirect to the callback, with the scripted provider's token response. Returns its ID.
 */
export async function connectThroughCallback(broker: BrokerHandle, credentialId: string, connectorId = "scripted"): Promise<string> {
  const state = await startFlow(broker, credentialId, connectorId);
  const response = await fetch(`${broker.httpUrl}/oauth2/callback?state=${state}&code=code-${state.slice(0, 8)}`);
  expect(response.status).toBe(200);
  const newest = await broker.database.db
    .collection("connections")
    .find({ credential_id: credentialId, connector_id: connectorId })
    .sort({ _id: -1 })
    .limit(1)
    .next();
  return String(newest!._id);
}

/** Starts a flow with InitialiseOAuth2Connection (organisation "acme") and returns its `state`, as the provider would send it back. */
export async function startFlow(broker: Pick<BrokerHandle, "connect">, credentialId: string, connectorId = "scripted"): Promise<string> {
  const { url } = await broker.connect(ConnectionService).initialiseOAuth2Connection({
    organisationId: "acme",
    connectorId,
    credential: { id: credentialId, organisationId: "acme" },
    authorizeUrl: "https://provider.example/authorize",
    clientId: "client-1",
    scopes: ["read"],
  });
  const state = new URL(url).searchParams.get("state")!;
  recordSecrets(state);
  return state;
}
