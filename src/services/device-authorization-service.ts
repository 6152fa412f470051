import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { requireOrganisation } from "../auth/caller.js";
import type { DeviceAuthorizations } from "../connections/device-authorizations.js";
import { invalid, notFound } from "../errors.js";
import { normaliseScopes } from "../oauth/authorize-url.js";
import type { CredentialStore } from "../store/credentials.js";
import { toConnection } from "./connection-views.js";

/** ConnectionService's StartDeviceAuthorization (RFC 8628): translates to and from DeviceAuthorizations.start. */
export function deviceAuthorizationMethods(deps: {
  credentials: CredentialStore;
  deviceAuthorizations: DeviceAuthorizations;
}): Pick<ServiceImpl<typeof ConnectionService>, "startDeviceAuthorization"> {
  return {
    async startDeviceAuthorization(req, ctx) {
      // Every input is checked before anything is read or written: the fields by the request
      // rules (the proto), the scopes here.
      const { organisationId, connectorId } = req;
      requireOrganisation(ctx, organisationId, "credential");
      const { id: credentialId, organisationId: credentialOrganisationId } = req.credential ?? invalid("credential", "is required");
      normaliseScopes(req.scopes, undefined);
      // A credential of another organisation is indistinguishable from a missing one.
      const credential = credentialOrganisationId === organisationId ? await deps.credentials.findById(organisationId, credentialId) : null;
      if (credential === null) throw notFound("credential");
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
    },
  };
}
