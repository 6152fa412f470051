import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useState } from "preact/hooks";
import type { StartDeviceAuthorizationResponse } from "../../../gen/oauth2broker/v1/connection_service_pb.js";
import type { Credential } from "../../../gen/oauth2broker/v1/credential_pb.js";
import type { Api } from "../api.js";
import { ErrorText, useAction } from "../ui.js";

/**
 * Starts a device authorization (RFC 8628) with the credential and shows the code to enter: the
 * connection is PENDING in Connections, and ACTIVE once someone approves at the provider.
 */
export function StartDeviceFlow(props: { api: Api; organisationId: string; credential: Credential; connectorId: string }) {
  const { api, organisationId, credential } = props;
  const [scopes, setScopes] = useState(credential.issuer ? "openid offline_access" : "");
  const [started, setStarted] = useState<StartDeviceAuthorizationResponse>();
  const action = useAction();
  return (
    <form
      aria-label={`Device flow ${credential.name}`}
      onSubmit={(event) => {
        event.preventDefault();
        void action.run(async () => {
          setStarted(
            await api.connections.startDeviceAuthorization({
              organisationId,
              connectorId: props.connectorId,
              credential: { id: credential.id, organisationId },
              scopes: scopes.split(/\s+/).filter(Boolean),
            }),
          );
        });
      }}
    >
      <label>
        Device flow scopes (separated by spaces)
        <input value={scopes} onInput={(e) => setScopes(e.currentTarget.value)} />
      </label>
      <div class="actions">
        <button type="submit" disabled={action.busy}>Start device flow</button>
      </div>
      {started === undefined ? null : (
        <p class="notice" role="status">
          Enter <code>{started.userCode}</code> at{" "}
          <a href={started.verificationUriComplete || started.verificationUri} target="_blank" rel="noopener noreferrer">
            {started.verificationUri}
          </a>{" "}
          before {started.expireTime === undefined ? "it expires" : timestampDate(started.expireTime).toLocaleTimeString()}. The connection{" "}
          {started.connection?.id} is pending until then.
        </p>
      )}
      <ErrorText error={action.error} />
    </form>
  );
}
