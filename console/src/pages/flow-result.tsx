import type { Api } from "../api.js";
import { ConnectionDetails } from "./connections.js";
import { ErrorText, Link, useLoad } from "../ui.js";

/** Where a test flow started from the console comes back, with `connection_id` or `error`. */
export function FlowResultPage(props: { api: Api; organisationId: string }) {
  const query = new URLSearchParams(location.search);
  const connectionId = query.get("connection_id");
  const error = query.get("error");
  const data = useLoad(
    async () => (connectionId === null ? undefined : (await props.api.connections.getConnection({ organisationId: props.organisationId, id: connectionId })).connection),
    [connectionId, props.organisationId],
  );
  if (connectionId === null) {
    return (
      <>
        <h1>The test connection failed</h1>
        <p role="alert" class="error">The provider or the broker answered: {error ?? "no outcome"}.</p>
      </>
    );
  }
  return (
    <>
      <h1>Test connection complete</h1>
      <ErrorText error={data.error} />
      {data.data !== undefined ? <ConnectionDetails connection={data.data} /> : null}
      <p><Link href={`/console/connections/${encodeURIComponent(connectionId)}`}>Open the connection</Link></p>
    </>
  );
}
