import { useState } from "preact/hooks";
import { type ConnectionEvent, ConnectionKind, ConnectionStatus, RevocationOutcome } from "../../../gen/oauth2broker/v1/connection_service_pb.js";
import type { Api } from "../api.js";
import { ErrorText, Link, navigate, Status, statusName, useAction, useLoad, when } from "../ui.js";
import { StartFlow } from "./start-flow.js";
import { CreateConnectionForm, ReplaceSecretForm } from "./create-connection.js";

/** A connection's kind as the console shows it ("client credentials", "api key"). */
export function kindName(kind: ConnectionKind): string {
  return (ConnectionKind[kind] ?? "UNSPECIFIED").replaceAll("_", " ").toLowerCase();
}

const FILTERABLE = [ConnectionStatus.ACTIVE, ConnectionStatus.REFRESH_FAILED, ConnectionStatus.NEEDS_REAUTHORIZATION, ConnectionStatus.PENDING];

export function ConnectionsPage(props: { api: Api; organisationId: string }) {
  const { api, organisationId } = props;
  const query = new URLSearchParams(location.search);
  const [status, setStatus] = useState(Number(query.get("status") ?? 0) as ConnectionStatus);
  const [connectorId, setConnectorId] = useState(query.get("connector") ?? "");
  const [credentialId, setCredentialId] = useState(query.get("credential") ?? "");
  const [pageToken, setPageToken] = useState("");
  const credentials = useLoad(() => api.credentials.listCredentials({ organisationId, pageSize: 100 }), [organisationId]);
  const list = useLoad(
    () => api.connections.listConnections({ organisationId, status, connectorId, credentialId, pageToken, pageSize: 50 }),
    [organisationId, status, connectorId, credentialId, pageToken],
  );
  const names = new Map(credentials.data?.credentials.map((credential) => [credential.id, credential.name]));
  return (
    <>
      <h1>Connections</h1>
      <form class="inline" aria-label="Filter connections" onSubmit={(event) => event.preventDefault()}>
        <label>
          Status
          <select value={String(status)} onChange={(e) => { setPageToken(""); setStatus(Number(e.currentTarget.value)); }}>
            <option value="0">any</option>
            {FILTERABLE.map((value) => (
              <option value={String(value)}>{statusName(value).replaceAll("_", " ").toLowerCase()}</option>
            ))}
          </select>
        </label>
        <label>
          Connector
          <input value={connectorId} onChange={(e) => { setPageToken(""); setConnectorId(e.currentTarget.value); }} />
        </label>
        <label>
          Credential
          <select value={credentialId} onChange={(e) => { setPageToken(""); setCredentialId(e.currentTarget.value); }}>
            <option value="">any</option>
            {credentials.data?.credentials.map((credential) => (
              <option value={credential.id}>{credential.name}</option>
            ))}
          </select>
        </label>
      </form>
      <ErrorText error={list.error} />
      <table>
        <thead>
          <tr><th scope="col">Connection</th><th scope="col">Kind</th><th scope="col">Status</th><th scope="col">Connector</th><th scope="col">Credential</th><th scope="col">Created</th></tr>
        </thead>
        <tbody>
          {list.data?.connections.map((connection) => (
            <tr>
              <td><Link href={`/console/connections/${encodeURIComponent(connection.id)}`}>{connection.id}</Link></td>
              <td>{kindName(connection.kind)}</td>
              <td><Status status={connection.status} /></td>
              <td>{connection.connectorId}</td>
              <td>{names.get(connection.credentialId) ?? connection.credentialId}</td>
              <td>{when(connection.createTime)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data?.connections.length === 0 ? <p class="muted">No connections.</p> : null}
      <div class="actions">
        {pageToken !== "" ? <button type="button" class="secondary" onClick={() => setPageToken("")}>First page</button> : null}
        {list.data?.nextPageToken ? (
          <button type="button" class="secondary" onClick={() => setPageToken(list.data?.nextPageToken ?? "")}>Next page</button>
        ) : null}
      </div>
      <h2>New connection without a browser</h2>
      <CreateConnectionForm api={api} organisationId={organisationId} credentials={credentials.data?.credentials ?? []} />
    </>
  );
}

export function ConnectionPage(props: { api: Api; organisationId: string; id: string }) {
  const { api, organisationId, id } = props;
  const data = useLoad(async () => {
    const [{ connection }, events, { providers }] = await Promise.all([
      api.connections.getConnection({ organisationId, id }),
      api.connections.listConnectionEvents({ organisationId, connectionId: id, pageSize: 100 }),
      api.providers.listProviders({ pageSize: 100 }),
    ]);
    const credential = connection === undefined || connection.credentialId === "" ? undefined : (await api.credentials.getCredential({ organisationId, id: connection.credentialId }).catch(() => undefined))?.credential;
    return { connection, events, credential, provider: providers.find((provider) => provider.id === credential?.provider) };
  }, [organisationId, id]);
  const [revoke, setRevoke] = useState(true);
  const [outcome, setOutcome] = useState<string>();
  const action = useAction();
  const connection = data.data?.connection;
  return (
    <>
      <h1>Connection {id}</h1>
      <ErrorText error={data.error} />
      {outcome !== undefined ? <p class="notice" role="status">{outcome}</p> : null}
      {connection !== undefined ? (
        <>
          <ConnectionDetails connection={connection} />
          {connection.kind === ConnectionKind.API_KEY || connection.kind === ConnectionKind.BASIC ? (
            <>
              <h2>Replace secret</h2>
              <ReplaceSecretForm
                api={api}
                organisationId={organisationId}
                id={id}
                basic={connection.kind === ConnectionKind.BASIC}
                onReplaced={() => {
                  setOutcome("Secret replaced.");
                  data.reload();
                }}
              />
            </>
          ) : null}
          {data.data?.credential !== undefined && (connection.kind === ConnectionKind.AUTHORIZATION_CODE || connection.kind === ConnectionKind.IMPORTED) ? (
            <>
              <h2>Reconnect</h2>
              <p class="muted">The end user signs in at the provider again; the connection keeps its ID, and its old tokens keep working until the new ones replace them.</p>
              <StartFlow
                api={api}
                organisationId={organisationId}
                credential={data.data.credential}
                provider={data.data.provider}
                label="Reconnect"
                button="Start reconnect"
                connectorId={connection.connectorId}
                connectionId={id}
              />
            </>
          ) : null}
          <h2>Delete</h2>
          <form
            onSubmit={(event) => {
              event.preventDefault();
              if (!confirm("Delete this connection and its tokens?")) return;
              void action.run(async () => {
                const result = await api.connections.deleteConnection({ organisationId, id, revoke });
                setOutcome(`Deleted. Revocation: ${(RevocationOutcome[result.revocation] ?? "").replaceAll("_", " ").toLowerCase()}${result.revocationError ? ` (${result.revocationError})` : ""}.`);
                data.reload();
              });
            }}
          >
            <label class="check">
              <input type="checkbox" checked={revoke} onChange={(e) => setRevoke(e.currentTarget.checked)} />
              Revoke the tokens at the provider first
            </label>
            <div class="actions">
              <button type="submit" class="danger" disabled={action.busy}>Delete connection</button>
            </div>
            <ErrorText error={action.error} />
          </form>
        </>
      ) : null}
      <h2>Timeline</h2>
      <EventTable events={data.data?.events.events ?? []} />
      <p><Link href="/console/connections">Back to connections</Link></p>
    </>
  );
}

type ConnectionView = NonNullable<Awaited<ReturnType<Api["connections"]["getConnection"]>>["connection"]>;

export function ConnectionDetails(props: { connection: ConnectionView }) {
  const { connection } = props;
  return (
    <dl>
      <dt>Kind</dt>
      <dd>{kindName(connection.kind)}</dd>
      <dt>Status</dt>
      <dd><Status status={connection.status} />{connection.statusReason ? ` (${connection.statusReason})` : ""}</dd>
      <dt>Connector</dt>
      <dd>{connection.connectorId}</dd>
      <dt>Credential</dt>
      <dd>{connection.credentialId}</dd>
      <dt>Scopes</dt>
      <dd>{connection.scopes.join(" ") || "—"}</dd>
      <dt>Access token expires</dt>
      <dd>{when(connection.accessTokenExpireTime)}</dd>
      <dt>Refresh token</dt>
      <dd>{connection.hasRefreshToken ? "stored" : "none"}</dd>
      <dt>Created</dt>
      <dd>{when(connection.createTime)}</dd>
      <dt>Updated</dt>
      <dd>{when(connection.updateTime)}</dd>
      {connection.externalAccount && connection.externalAccount.id !== "" ? (
        <>
          <dt>Connected account</dt>
          <dd>{[connection.externalAccount.name, connection.externalAccount.email, connection.externalAccount.id].filter(Boolean).join(" · ")}</dd>
        </>
      ) : null}
      {Object.entries(connection.metadata).map(([key, value]) => (
        <>
          <dt>{key}</dt>
          <dd>{value}</dd>
        </>
      ))}
    </dl>
  );
}

export function EventTable(props: { events: ConnectionEvent[] }) {
  if (props.events.length === 0) return <p class="muted">No events yet.</p>;
  return (
    <table>
      <thead>
        <tr><th scope="col">When</th><th scope="col">Event</th><th scope="col">Status</th><th scope="col">Connection</th></tr>
      </thead>
      <tbody>
        {props.events.map((event) => (
          <tr>
            <td>{when(event.createTime)}</td>
            <td>{event.type}</td>
            <td>{event.status ? <Status status={event.status} /> : "—"}{event.statusReason ? ` (${event.statusReason})` : ""}</td>
            <td>
              <a
                href={`/console/connections/${encodeURIComponent(event.connectionId)}`}
                onClick={(e) => { e.preventDefault(); navigate(`/console/connections/${encodeURIComponent(event.connectionId)}`); }}
              >
                {event.connectionId}
              </a>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
