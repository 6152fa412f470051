import { create, toJson } from "@bufbuild/protobuf";
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
