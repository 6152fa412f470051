import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useState } from "preact/hooks";
import type { Credential } from "../../../gen/oauth2broker/v1/credential_pb.js";
import type { Api } from "../api.js";
import { ErrorText, navigate, useAction } from "../ui.js";

type Kind = "clientCredentials" | "imported" | "apiKey" | "basic";

const KIND_LABELS: Record<Kind, string> = {
  clientCredentials: "Client credentials",
  imported: "Imported tokens",
  apiKey: "API key",
  basic: "Basic username and password",
};

const words = (text: string) => text.split(/\s+/).filter(Boolean);

/**
 * CreateConnection from the console: a client credentials connection, imported tokens, or a
 * static API key or Basic pair. Secrets typed here go to the broker once and are never shown again.
 */
export function CreateConnectionForm(props: { api: Api; organisationId: string; credentials: Credential[] }) {
  const { api, organisationId } = props;
  const [kind, setKind] = useState<Kind>("clientCredentials");
  const [fields, setFields] = useState<Record<string, string>>({});
  const [checkRefresh, setCheckRefresh] = useState(false);
  const action = useAction();
  const field = (name: string) => fields[name] ?? "";
  const input = (name: string, label: string, options: { secret?: boolean; required?: boolean } = {}) => (
    <label for={`new-connection-${name}`}>
      {label}
      {options.secret ? (
        <input id={`new-connection-${name}`} name={name} type="password" autocomplete="off" required={options.required} value={field(name)} onInput={(e) => setFields({ ...fields, [name]: e.currentTarget.value })} />
      ) : (
        <input id={`new-connection-${name}`} name={name} autocomplete="off" required={options.required} value={field(name)} onInput={(e) => setFields({ ...fields, [name]: e.currentTarget.value })} />
      )}
    </label>
  );
  const credential = () => ({ id: field("credential") || (props.credentials[0]?.id ?? ""), organisationId });
  const request = () => {
    switch (kind) {
      case "clientCredentials":
        return { case: kind, value: { credential: credential(), scopes: words(field("scopes")), resource: words(field("resource")), audience: field("audience") } };
      case "imported": {
        const expires = field("expires");
        return {
          case: kind,
          value: {
            credential: credential(),
            importId: field("importId"),
            accessToken: field("accessToken"),
            refreshToken: field("refreshToken"),
            expireTime: expires === "" ? undefined : timestampFromDate(new Date(expires)),
            scopes: words(field("scopes")),
            checkRefresh,
          },
        };
      }
      case "apiKey":
        return { case: kind, value: { apiKey: field("apiKey"), provider: field("provider") } };
      case "basic":
        return { case: kind, value: { username: field("username"), password: field("password"), provider: field("provider") } };
    }
  };
  return (
    <form
      aria-label="New connection"
      onSubmit={(event) => {
        event.preventDefault();
        void action.run(async () => {
          const { connection } = await api.connections.createConnection({ organisationId, connectorId: field("connectorId"), kind: request() });
          navigate(`/console/connections/${encodeURIComponent(connection?.id ?? "")}`);
        });
      }}
    >
      <label>
        Kind
        <select name="kind" value={kind} onChange={(e) => setKind(e.currentTarget.value as Kind)}>
          {(Object.keys(KIND_LABELS) as Kind[]).map((value) => (
            <option value={value}>{KIND_LABELS[value]}</option>
          ))}
        </select>
      </label>
      {input("connectorId", "Connector ID", { required: true })}
      {kind === "clientCredentials" || kind === "imported" ? (
        <label>
          Credential
          <select name="credential" value={field("credential")} onChange={(e) => setFields({ ...fields, credential: e.currentTarget.value })}>
            {props.credentials.map((option) => (
              <option value={option.id}>{option.name}</option>
            ))}
          </select>
        </label>
      ) : null}
      {kind === "clientCredentials" ? (
        <>
          {input("scopes", "Scopes (separated by spaces)")}
          {input("resource", "Resources (RFC 8707, separated by spaces; optional)")}
          {input("audience", "Audience (optional)")}
        </>
      ) : null}
      {kind === "imported" ? (
        <>
          {input("importId", "Import ID (your own; importing it again changes nothing)", { required: true })}
          {input("accessToken", "Access token", { secret: true, required: true })}
          {input("refreshToken", "Refresh token (optional)", { secret: true })}
          {input("expires", "Expires (ISO 8601 time; optional)")}
          {input("scopes", "Scopes (separated by spaces)")}
          <label class="check">
            <input type="checkbox" checked={checkRefresh} onChange={(e) => setCheckRefresh(e.currentTarget.checked)} />
            Refresh once before storing (checks the refresh token)
          </label>
        </>
      ) : null}
      {kind === "apiKey" ? input("apiKey", "API key", { secret: true, required: true }) : null}
      {kind === "basic" ? (
        <>
          {input("username", "Username", { required: true })}
          {input("password", "Password", { secret: true, required: true })}
        </>
      ) : null}
      {kind === "apiKey" || kind === "basic" ? input("provider", "Catalog provider ID (optional)") : null}
      <div class="actions">
        <button type="submit" disabled={action.busy}>Create connection</button>
      </div>
      <ErrorText error={action.error} />
    </form>
  );
}

/** ReplaceStaticConnection: a new API key, or a new username and password, for the same connection. */
export function ReplaceSecretForm(props: { api: Api; organisationId: string; id: string; basic: boolean; onReplaced: () => void }) {
  const [apiKey, setApiKey] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const action = useAction();
  return (
    <form
      aria-label="Replace secret"
      onSubmit={(event) => {
        event.preventDefault();
        void action.run(async () => {
          await props.api.connections.replaceStaticConnection({ organisationId: props.organisationId, id: props.id, apiKey, username, password });
          setApiKey("");
          setPassword("");
          props.onReplaced();
        });
      }}
    >
      {props.basic ? (
        <>
          <label>Username<input value={username} required autocomplete="off" onInput={(e) => setUsername(e.currentTarget.value)} /></label>
          <label>Password<input type="password" value={password} required autocomplete="off" onInput={(e) => setPassword(e.currentTarget.value)} /></label>
        </>
      ) : (
        <label>New API key<input type="password" value={apiKey} required autocomplete="off" onInput={(e) => setApiKey(e.currentTarget.value)} /></label>
      )}
      <div class="actions">
        <button type="submit" disabled={action.busy}>Replace</button>
      </div>
      <ErrorText error={action.error} />
    </form>
  );
}
