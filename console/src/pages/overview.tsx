import type { Api } from "../api.js";
import { EventTable } from "./connections.js";
import { ErrorText, Link, Status, useLoad } from "../ui.js";

export function OverviewPage(props: { api: Api; organisationId: string }) {
  const { api, organisationId } = props;
  const data = useLoad(async () => {
    const [counts, events, credentials] = await Promise.all([
      api.connections.countConnections({ organisationId }),
      api.connections.listConnectionEvents({ organisationId, pageSize: 20 }),
      api.credentials.listCredentials({ organisationId, pageSize: 100 }),
    ]);
    return { counts, events, credentials };
  }, [organisationId]);
  const names = new Map(data.data?.credentials.credentials.map((credential) => [credential.id, credential.name]));
  const failing = Object.entries(data.data?.counts.failingConnectionsByCredential ?? {});
  return (
    <>
      <h1>Overview of {organisationId}</h1>
      <ErrorText error={data.error} />
      <h2>Connections by status</h2>
      <div class="cards">
        {data.data?.counts.counts.map((entry) => (
          <div class="card">
            <div class="count">{String(entry.count)}</div>
            <Status status={entry.status} />
          </div>
        ))}
      </div>
      <h2>Credentials with failing connections</h2>
      {failing.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <table>
          <thead>
            <tr><th scope="col">Credential</th><th scope="col">Failing connections</th></tr>
          </thead>
          <tbody>
            {failing.map(([credentialId, count]) => (
              <tr>
                <td>
                  <Link href={`/console/connections?credential=${encodeURIComponent(credentialId)}`}>{names.get(credentialId) ?? credentialId}</Link>
                </td>
                <td>{String(count)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Latest events</h2>
      <div class="actions">
        <button type="button" class="secondary" onClick={data.reload}>Refresh</button>
      </div>
      <EventTable events={data.data?.events.events ?? []} />
    </>
  );
}
