import { type Client, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ApiKeyService } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { ProviderService } from "../../gen/oauth2broker/v1/provider_service_pb.js";

/** Who is signed in, as the session routes describe it. */
export interface Session {
  csrfToken: string;
  csrfHeader: string;
  caller: { admin: boolean; organisationId: string; label: string };
}

export interface Api {
  credentials: Client<typeof CredentialService>;
  connections: Client<typeof ConnectionService>;
  organisations: Client<typeof OrganisationService>;
  apiKeys: Client<typeof ApiKeyService>;
  providers: Client<typeof ProviderService>;
}

/**
 * The broker's own Connect API, authenticated by the session cookie (sent by the browser, never
 * readable here) and the CSRF token, which lives only in this page's memory.
 */
export function apiFor(session: Session, onSignedOut: () => void): Api {
  const csrf: Interceptor = (next) => async (req) => {
    req.header.set(session.csrfHeader, session.csrfToken);
    try {
      return await next(req);
    } catch (error) {
      if (ConnectError.from(error).code === 16 /* Unauthenticated */) onSignedOut();
      throw error;
    }
  };
  const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [csrf] });
  return {
    credentials: createClient(CredentialService, transport),
    connections: createClient(ConnectionService, transport),
    organisations: createClient(OrganisationService, transport),
    apiKeys: createClient(ApiKeyService, transport),
    providers: createClient(ProviderService, transport),
  };
}

/** The current session, or undefined when not signed in. */
export async function currentSession(): Promise<Session | undefined> {
  const response = await fetch("/console/session", { credentials: "same-origin" });
  return response.ok ? ((await response.json()) as Session) : undefined;
}

export async function signIn(key: string): Promise<Session> {
  const response = await fetch("/console/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key }),
  });
  if (response.status === 401) throw new Error("That key was refused. Check it and try again.");
  if (!response.ok) throw new Error(((await response.json().catch(() => ({}))) as { message?: string }).message ?? "Sign-in failed.");
  return (await response.json()) as Session;
}

export async function signOut(session: Session): Promise<void> {
  await fetch("/console/session", { method: "DELETE", credentials: "same-origin", headers: { [session.csrfHeader]: session.csrfToken } });
}

/** A message for people: the RPC's own message, without the code prefix. */
export function errorText(error: unknown): string {
  return error instanceof ConnectError ? error.rawMessage : error instanceof Error ? error.message : String(error);
}
