import { useState } from "preact/hooks";
import type { Credential } from "../../../gen/oauth2broker/v1/credential_pb.js";
import { type Provider, ProviderParameterLevel } from "../../../gen/oauth2broker/v1/provider_service_pb.js";
import type { Api } from "../api.js";
import { ErrorText, useAction } from "../ui.js";

/**
 * Starts a real flow for the credential in a new tab, which lands on the console's result page:
 * a test connection, or with `connectionId` a reconnect of that connection (it keeps its ID).
 */
export function StartFlow(props: {
  api: Api;
  organisationId: string;
  credential: Credential;
  provider: Provider | undefined;
  label: string;
  button: string;
  connectorId: string;
  connectionId?: string;
}) {
  const { api, organisationId, credential, provider } = props;
  const [connectionConfig, setConnectionConfig] = useState<Record<string, string>>({});
  const [authorizeUrl, setAuthorizeUrl] = useState(credential.issuer && provider === undefined ? `${credential.issuer.replace(/\/$/, "")}/auth` : "");
  const [scopes, setScopes] = useState(credential.issuer ? "openid email" : "");
  const [prompt, setPrompt] = useState(credential.issuer ? "login consent" : "");
  const [started, setStarted] = useState(false);
  const action = useAction();
  return (
    <form
      aria-label={props.label}
      onSubmit={(event) => {
        event.preventDefault();
        // Opened before the call, while the click still counts as the user's: browsers block later
        // pop-ups. Its opener is cut before it leaves for the provider, whose page could otherwise
        // navigate this console through window.opener (issue 20, item 4).
        const tab = window.open("about:blank", "_blank");
        if (tab !== null) tab.opener = null;
        void action.run(async () => {
          try {
            const { url } = await api.connections.initialiseOAuth2Connection({
              organisationId,
              connectorId: props.connectorId,
              credential: { id: credential.id, organisationId },
              connectionId: props.connectionId ?? "",
              authorizeUrl,
              connectionConfig,
              clientId: credential.clientId,
              scopes: scopes.split(/\s+/).filter(Boolean),
              prompt,
              returnUrl: `${location.origin}/console/flow-result?org=${encodeURIComponent(organisationId)}`,
            });
            if (tab === null) location.assign(url);
            else tab.location.href = url;
            setStarted(true);
          } catch (error) {
            tab?.close();
            throw error;
          }
        });
      }}
    >
      <label>
        {provider === undefined ? "Authorization endpoint URL" : "Authorization endpoint URL (optional: the catalog's)"}
        <input value={authorizeUrl} required={provider === undefined} onInput={(e) => setAuthorizeUrl(e.currentTarget.value)} />
      </label>
      {provider?.parameters
        .filter((parameter) => parameter.level === ProviderParameterLevel.CONNECTION)
        .map((parameter) => (
          <label>
            {parameter.name} ({parameter.description}{props.connectionId === undefined ? "" : "; empty keeps the connection's"})
            <input
              required={props.connectionId === undefined}
              value={connectionConfig[parameter.name] ?? ""}
              onInput={(e) => setConnectionConfig({ ...connectionConfig, [parameter.name]: e.currentTarget.value })}
            />
          </label>
        ))}
      <label>
        Scopes (separated by spaces)
        <input value={scopes} onInput={(e) => setScopes(e.currentTarget.value)} />
      </label>
      <label>
        Prompt (optional)
        <input value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} />
      </label>
      <div class="actions">
        <button type="submit" disabled={action.busy}>{props.button}</button>
      </div>
      {started ? <p class="notice" role="status">The provider's sign-in opened in a new tab; it shows the connection when it completes.</p> : null}
      <ErrorText error={action.error} />
    </form>
  );
}
