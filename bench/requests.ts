import { create, toJson } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { CredentialService } from "../gen/oauth2broker/v1/credential_service_pb.js";
import { type InitialiseOAuth2ConnectionRequest, InitialiseOAuth2ConnectionRequestSchema } from "../gen/oauth2broker/v1/connection_service_pb.js";

/** The InitialiseOAuth2Connection every scenario sends: three scopes and an extra parameter, as a typical Google Drive connector would. */
export function initialiseRequest(credentialId: string, organisationId = "bench"): InitialiseOAuth2ConnectionRequest {
  return create(InitialiseOAuth2ConnectionRequestSchema, {
    organisationId,
    connectorId: "bench",
    credential: { id: credentialId, organisationId },
    authorizeUrl: "https://idp.example/authorize",
    clientId: "bench-client",
    scopes: ["email", "profile", "https://www.googleapis.com/auth/drive.readonly"],
    additionalParams: "access_type=offline",
  });
}

/** The same request as protobuf JSON, for ghz. */
export function initialiseRequestJson(credentialId: string): unknown {
  return toJson(InitialiseOAuth2ConnectionRequestSchema, initialiseRequest(credentialId));
}

/** The broker's Connect API (HTTP/1.1, JSON) as the admin. */
export function adminTransport(httpUrl: string, adminToken: string): Transport {
  return createConnectTransport({
    baseUrl: httpUrl,
    httpVersion: "1.1",
    interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${adminToken}`), next(req))],
  });
}

/** The credential every scenario connects with, against the loopback token endpoint; returns its ID. */
export async function createBenchCredential(transport: Transport, tokenUrl: string, organisationId = "bench"): Promise<string> {
  const { credential } = await createClient(CredentialService, transport).createCredential({
    credential: { organisationId, name: organisationId, clientId: "bench-client", clientSecret: "bench-secret", tokenUrl },
  });
  return credential!.id;
}
