import { useState } from "preact/hooks";
import type { Api } from "../api.js";
import { ErrorText, useAction, useLoad, when } from "../ui.js";

/** Admin only, as over the API. A new key is shown once, here, and never again. */
export function ApiKeysPage(props: { api: Api; organisationId: string }) {
  const { api, organisationId } = props;
  const list = useLoad(() => api.apiKeys.listApiKeys({ organisationId }), [organisationId]);
  const [name, setName] = useState("");
  const [admin, setAdmin] = useState(false);
  const [created, setCreated] = useState<string>();
  const action = useAction();
  return (
    <>
      <h1>API keys</h1>
      <form
        aria-label="New API key"
        onSubmit={(event) => {
          event.preventDefault();
          void action.run(async () => {
            const response = await api.apiKeys.createApiKey({ name, admin, organisationId: admin ? "" : organisationId });
            setCreated(response.key);
            setName("");
            list.reload();
          });
        }}
      >
        <strong>New API key</strong>
        <label>
          Name
          <input value={name} required onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label class="check">
          <input type="checkbox" checked={admin} onChange={(e) => setAdmin(e.currentTarget.checked)} />
          Admin key (every organisation) instead of a key for {organisationId}
        </label>
        <div class="actions">
          <button type="submit" disabled={action.busy}>Create key</button>
        </div>
        <ErrorText error={action.error} />
      </form>
      {created !== undefined ? (
        <div class="notice" role="status">
          <p>The new key, shown only this once:</p>
          <p class="secret" data-testid="new-api-key">{created}</p>
          <button type="button" class="secondary" onClick={() => setCreated(undefined)}>I have stored it</button>
        </div>
      ) : null}
      <ErrorText error={list.error} />
      <table>
        <thead>
          <tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Scope</th><th scope="col">Created</th><th scope="col">Revoked</th><th scope="col">Actions</th></tr>
        </thead>
        <tbody>
          {list.data?.apiKeys.map((key) => (
            <tr>
              <td>{key.name}</td>
              <td>{key.prefix}</td>
              <td>{key.admin ? "admin" : key.organisationId}</td>
              <td>{when(key.createTime)}</td>
              <td>{when(key.revokeTime)}</td>
              <td>
                {key.revokeTime === undefined ? (
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Revoke ${key.name}`}
                    onClick={() => {
                      if (!confirm(`Revoke the key "${key.name}"? Callers using it are refused at once.`)) return;
                      void action.run(async () => {
                        await api.apiKeys.revokeApiKey({ id: key.id });
                        list.reload();
                      });
                    }}
                  >
                    Revoke
                  </button>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
