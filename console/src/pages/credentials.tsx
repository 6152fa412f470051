import { useState } from "preact/hooks";
import { type Credential, TokenEndpointAuthMethod } from "../../../gen/oauth2broker/v1/credential_pb.js";
import { type Provider, ProviderParameterLevel } from "../../../gen/oauth2broker/v1/provider_service_pb.js";
import type { Api } from "../api.js";
import { ErrorText, useAction, useLoad, when } from "../ui.js";
import { CredentialKeys, RotateSecret } from "./credential-keys.js";
import { StartDeviceFlow } from "./start-device-flow.js";
import { StartFlow } from "./start-flow.js";

/** The fields a person edits; the same form creates and edits. */
interface CredentialFields {
  /** A catalog provider's ID, or "" for a credential described entirely by hand. */
  provider: string;
  providerConfig: Record<string, string>;
  name: string;
  clientId: string;
  tokenUrl: string;
  revocationUrl: string;
  issuer: string;
  authMethod: TokenEndpointAuthMethod;
  issSupported: boolean;
  disablePkce: boolean;
}

const EMPTY: CredentialFields = {
  provider: "",
  providerConfig: {},
  name: "",
  clientId: "",
  tokenUrl: "",
  revocationUrl: "",
  issuer: "",
  authMethod: TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
  issSupported: false,
  disablePkce: false,
};

function fieldsOf(credential: Credential): CredentialFields {
  return {
    provider: credential.provider,
    providerConfig: { ...credential.providerConfig },
    name: credential.name,
    clientId: credential.clientId,
    tokenUrl: credential.tokenUrl,
    revocationUrl: credential.revocationUrl ?? "",
    issuer: credential.issuer ?? "",
    authMethod: credential.tokenEndpointAuthMethod ?? TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
    issSupported: credential.authorizationResponseIssParameterSupported,
    disablePkce: credential.disablePkce ?? false,
  };
}

export function CredentialsPage(props: { api: Api; organisationId: string }) {
  const { api, organisationId } = props;
  const list = useLoad(() => api.credentials.listCredentials({ organisationId, pageSize: 100 }), [organisationId]);
  const catalog = useLoad(() => api.providers.listProviders({ pageSize: 100 }), []);
  const providers = catalog.data?.providers ?? [];
  const [creating, setCreating] = useState(false);
  const [open, setOpen] = useState<{ id: string; panel: keyof typeof PANEL_LABELS }>();
  const action = useAction();
  return (
    <>
      <h1>Credentials</h1>
      <p class="muted">A credential is your OAuth client registration at a provider. Its secret is write-only: it is never shown again.</p>
      <div class="actions">
        <button type="button" onClick={() => setCreating(!creating)} aria-expanded={creating}>New credential</button>
      </div>
      {creating ? (
        <CredentialForm
          title="New credential"
          initial={EMPTY}
          providers={providers}
          askSecret
          onSubmit={async (fields, secret) => {
            const byHand = fields.provider === "";
            await api.credentials.createCredential({
              credential: {
                organisationId,
                name: fields.name,
                clientId: fields.clientId,
                clientSecret: secret,
                tokenUrl: fields.tokenUrl,
                provider: fields.provider,
                providerConfig: fields.providerConfig,
                // With a provider, the catalog decides these unless overridden through the API.
                ...(byHand ? { tokenEndpointAuthMethod: fields.authMethod, disablePkce: fields.disablePkce } : {}),
                authorizationResponseIssParameterSupported: fields.issSupported,
                ...(fields.issuer ? { issuer: fields.issuer } : {}),
                ...(fields.revocationUrl ? { revocationUrl: fields.revocationUrl } : {}),
              },
            });
            setCreating(false);
            list.reload();
          }}
        />
      ) : null}
      <ErrorText error={list.error ?? action.error} />
      <table>
        <thead>
          <tr><th scope="col">Name</th><th scope="col">Client ID</th><th scope="col">Token endpoint</th><th scope="col">Updated</th><th scope="col">Actions</th></tr>
        </thead>
        <tbody>
          {list.data?.credentials.map((credential) => (
            <>
              <tr>
                <td>{credential.name}<div class="muted">{credential.id}</div></td>
                <td>
                  {credential.clientId}
                  {credential.previousClientSecretSet ? <div class="muted">secret rotation under way</div> : null}
                </td>
                <td>{credential.tokenUrl}</td>
                <td>{when(credential.updateTime)}</td>
                <td>
                  <div class="actions">
                    {(["test", "edit", "secret", "rotate", "keys"] as const).map((panel) => (
                      <button
                        type="button"
                        class="secondary"
                        aria-expanded={open?.id === credential.id && open.panel === panel}
                        aria-label={`${PANEL_LABELS[panel]} ${credential.name}`}
                        onClick={() => setOpen(open?.id === credential.id && open.panel === panel ? undefined : { id: credential.id, panel })}
                      >
                        {PANEL_LABELS[panel]}
                      </button>
                    ))}
                    <button
                      type="button"
                      class="danger"
                      aria-label={`Delete ${credential.name}`}
                      disabled={action.busy}
                      onClick={() => {
                        if (!confirm(`Delete the credential "${credential.name}"?`)) return;
                        void action.run(async () => {
                          await api.credentials.deleteCredential({ organisationId, id: credential.id });
                          list.reload();
                        });
                      }}
                    >
                      Delete
                    </button>
                  </div>
                </td>
              </tr>
              {open?.id === credential.id ? (
                <tr>
                  <td colSpan={5}>
                    {open.panel === "edit" ? (
                      <CredentialForm
                        providers={providers}
                        title={`Edit ${credential.name}`}
                        initial={fieldsOf(credential)}
                        secretToChangeEndpoints
                        onSubmit={async (fields, secret) => {
                          const paths = changedPaths(fieldsOf(credential), fields);
                          if (secret !== "") paths.push("client_secret");
                          await api.credentials.updateCredential({
                            credential: {
                              id: credential.id,
                              organisationId,
                              clientSecret: secret,
                              name: fields.name,
                              clientId: fields.clientId,
                              tokenUrl: fields.tokenUrl,
                              tokenEndpointAuthMethod: fields.authMethod,
                              disablePkce: fields.disablePkce,
                              provider: fields.provider,
                              providerConfig: fields.providerConfig,
                              authorizationResponseIssParameterSupported: fields.issSupported,
                              ...(fields.issuer ? { issuer: fields.issuer } : {}),
                              ...(fields.revocationUrl ? { revocationUrl: fields.revocationUrl } : {}),
                            },
                            updateMask: { paths },
                          });
                          setOpen(undefined);
                          list.reload();
                        }}
                      />
                    ) : open.panel === "rotate" ? (
                      <RotateSecret api={api} organisationId={organisationId} credential={credential} onChange={list.reload} />
                    ) : open.panel === "keys" ? (
                      <CredentialKeys api={api} organisationId={organisationId} credential={credential} onChange={list.reload} />
                    ) : open.panel === "secret" ? (
                      <ReplaceSecret
                        credential={credential}
                        onSubmit={async (secret) => {
                          await api.credentials.updateCredential({
                            credential: { id: credential.id, organisationId, clientSecret: secret },
                            updateMask: { paths: ["client_secret"] },
                          });
                          setOpen(undefined);
                          list.reload();
                        }}
                      />
                    ) : (
                      <>
                        <StartFlow
                          api={api}
                          organisationId={organisationId}
                          credential={credential}
                          provider={providers.find((p) => p.id === credential.provider)}
                          label={`Test ${credential.name}`}
                          button="Start test connection"
                          connectorId="console-test"
                        />
                        <StartDeviceFlow api={api} organisationId={organisationId} credential={credential} connectorId="console-test" />
                      </>
                    )}
                  </td>
                </tr>
              ) : null}
            </>
          ))}
        </tbody>
      </table>
      {list.data?.credentials.length === 0 ? <p class="muted">No credentials yet.</p> : null}
    </>
  );
}

const PANEL_LABELS = { test: "Test", edit: "Edit", secret: "Replace secret", rotate: "Rotate secret", keys: "Keys" } as const;

function changedPaths(before: CredentialFields, after: CredentialFields): string[] {
  const changed: string[] = [];
  if (before.provider !== after.provider) changed.push("provider");
  if (JSON.stringify(before.providerConfig) !== JSON.stringify(after.providerConfig)) changed.push("provider_config");
  const paths: Array<[Exclude<keyof CredentialFields, "provider" | "providerConfig">, string]> = [
    ["name", "name"],
    ["clientId", "client_id"],
    ["tokenUrl", "token_url"],
    ["revocationUrl", "revocation_url"],
    ["issuer", "issuer"],
    ["authMethod", "token_endpoint_auth_method"],
    ["issSupported", "authorization_response_iss_parameter_supported"],
    ["disablePkce", "disable_pkce"],
  ];
  return [...changed, ...paths.filter(([field]) => before[field] !== after[field]).map(([, path]) => path)];
}

function CredentialForm(props: {
  title: string;
  providers: Provider[];
  initial: CredentialFields;
  askSecret?: boolean;
  /** Editing: a stored secret only goes to endpoints in force when it was stored, so new endpoints need it again. */
  secretToChangeEndpoints?: boolean;
  onSubmit: (fields: CredentialFields, secret: string) => Promise<void>;
}) {
  const [fields, setFields] = useState(props.initial);
  const [secret, setSecret] = useState("");
  const action = useAction();
  const chosen = props.providers.find((provider) => provider.id === fields.provider);
  const text = (field: "name" | "clientId" | "tokenUrl" | "revocationUrl" | "issuer", label: string, required = false) => (
    <label>
      {label}
      <input value={fields[field]} required={required} onInput={(e) => setFields({ ...fields, [field]: e.currentTarget.value })} />
    </label>
  );
  return (
    <form
      aria-label={props.title}
      onSubmit={(event) => {
        event.preventDefault();
        void action.run(() => props.onSubmit(fields, secret));
      }}
    >
      <strong>{props.title}</strong>
      <label>
        Provider
        <select value={fields.provider} onChange={(e) => setFields({ ...fields, provider: e.currentTarget.value, providerConfig: {} })}>
          <option value="">None: describe the provider by hand</option>
          {props.providers.map((provider) => (
            <option value={provider.id}>{provider.displayName}</option>
          ))}
        </select>
      </label>
      {chosen !== undefined ? (
        <p class="muted">
          Endpoints and behaviour come from the catalog (<a href={chosen.documentationUrl} target="_blank" rel="noreferrer noopener">the provider's documentation</a>); a field filled in below overrides it.
        </p>
      ) : null}
      {chosen?.parameters
        .filter((parameter) => parameter.level === ProviderParameterLevel.CREDENTIAL)
        .map((parameter) => (
          <label>
            {parameter.name} ({parameter.description})
            <input
              required
              pattern={parameter.pattern.replace(/^\^/, "").replace(/\$$/, "")}
              value={fields.providerConfig[parameter.name] ?? ""}
              onInput={(e) => setFields({ ...fields, providerConfig: { ...fields.providerConfig, [parameter.name]: e.currentTarget.value } })}
            />
          </label>
        ))}
      {text("name", "Name", true)}
      {text("clientId", "Client ID", true)}
      {props.askSecret ? (
        <label>
          Client secret{fields.authMethod === TokenEndpointAuthMethod.PRIVATE_KEY_JWT ? " (none needed for private_key_jwt)" : ""}
          <input
            type="password"
            autocomplete="off"
            required={fields.authMethod !== TokenEndpointAuthMethod.PRIVATE_KEY_JWT}
            value={secret}
            onInput={(e) => setSecret(e.currentTarget.value)}
          />
        </label>
      ) : null}
      {props.secretToChangeEndpoints ? (
        <label>
          Client secret (only to change an endpoint or the issuer: they need it again)
          <input type="password" autocomplete="off" value={secret} onInput={(e) => setSecret(e.currentTarget.value)} />
        </label>
      ) : null}
      {text("tokenUrl", chosen === undefined ? "Token endpoint URL" : "Token endpoint URL (optional: the catalog's)", chosen === undefined)}
      {text("revocationUrl", "Revocation endpoint URL (optional)")}
      {text("issuer", "Issuer (optional, OpenID providers)")}
      {chosen === undefined ? (
      <>
      <label>
        Client authentication
        <select value={String(fields.authMethod)} onChange={(e) => setFields({ ...fields, authMethod: Number(e.currentTarget.value) })}>
          <option value={String(TokenEndpointAuthMethod.CLIENT_SECRET_BASIC)}>HTTP Basic (client_secret_basic)</option>
          <option value={String(TokenEndpointAuthMethod.CLIENT_SECRET_POST)}>In the body (client_secret_post)</option>
          <option value={String(TokenEndpointAuthMethod.PRIVATE_KEY_JWT)}>Signed JWT with a broker key (private_key_jwt)</option>
        </select>
      </label>
      <label class="check">
        <input type="checkbox" checked={fields.issSupported} onChange={(e) => setFields({ ...fields, issSupported: e.currentTarget.checked })} />
        The provider always returns iss on the callback
      </label>
      <label class="check">
        <input type="checkbox" checked={fields.disablePkce} onChange={(e) => setFields({ ...fields, disablePkce: e.currentTarget.checked })} />
        Disable PKCE
      </label>
      </>
      ) : null}
      <div class="actions">
        <button type="submit" disabled={action.busy}>Save</button>
      </div>
      <ErrorText error={action.error} />
    </form>
  );
}

function ReplaceSecret(props: { credential: Credential; onSubmit: (secret: string) => Promise<void> }) {
  const [secret, setSecret] = useState("");
  const action = useAction();
  return (
    <form
      aria-label={`Replace the secret of ${props.credential.name}`}
      onSubmit={(event) => {
        event.preventDefault();
        void action.run(() => props.onSubmit(secret));
      }}
    >
      <label>
        New client secret
        <input type="password" autocomplete="off" required value={secret} onInput={(e) => setSecret(e.currentTarget.value)} />
      </label>
      <div class="actions">
        <button type="submit" disabled={action.busy}>Replace secret</button>
      </div>
      <ErrorText error={action.error} />
    </form>
  );
}
