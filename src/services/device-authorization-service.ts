import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { requireOrganisation } from "../auth/caller.js";
import { DeviceAuthorizationError, type DeviceAuthorizations } from "../connections/device-authorizations.js";
import { invalid } from "../errors.js";
import { normaliseScopes } from "../oauth/authorize-url.js";
import type { CredentialStore } from "../store/credentials.js";
import { requireIdentifier, requireText } from "../validation.js";
import { toConnection } from "./connection-views.js";

/** ConnectionService's StartDeviceAuthorization (RFC 8628): translates to and from DeviceAuthorizations.start. */
export function deviceAuthorizationMethods(deps: {
  credentials: CredentialStore;
  deviceAuthorizations: DeviceAuthorizations;
}): Pick<ServiceImpl<typeof ConnectionService>, "startDeviceAuthorization"> {
  return {
    async startDeviceAuthorization(req, ctx) {
      // Every input is checked before anything is read or written.
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      requireOrganisation(ctx, organisationId, "credential");
      const connectorId = requireIdentifier(req.connectorId, "connector_id");
      const reference = req.credential ?? invalid("credential", "is required");
      const credentialId = requireText(reference.id, "credential.id", 128);
      const credentialOrganisationId = requireIdentifier(reference.organisationId, "credential.organisation_id");
      normaliseScopes(req.scopes, undefined);
      // A credential of another organisation is indistinguishable from a missing one.
      const credential = credentialOrganisationId === organisationId ? await deps.credentials.findById(organisationId, credentialId) : null;
      if (credential === null) throw new ConnectError("credential not found", Code.NotFound);
      try {
        const started = await deps.deviceAuthorizations.start({ organisationId, connectorId, credential, scopes: req.scopes });
        const { authorization } = started;
        return {
          connection: toConnection(started.connection),
          userCode: authorization.userCode,
          verificationUri: authorization.verificationUri,
          verificationUriComplete: authorization.verificationUriComplete ?? "",
          expireTime: timestampFromDate(started.expireTime),
          intervalSeconds: authorization.interval,
        };
      } catch (error) {
        if (!(error instanceof DeviceAuthorizationError)) throw error;
        throw new ConnectError(error.message, error.code === "provider_unreachable" ? Code.Unavailable : Code.FailedPrecondition);
      }
    },
  };
}
