import { useEffect, useState } from "preact/hooks";
import type { Api } from "../api.js";
import { ErrorText, useAction, useLoad, when } from "../ui.js";

export function SettingsPage(props: { api: Api; organisationId: string }) {
  const { api, organisationId } = props;
  const settings = useLoad(() => api.organisations.getOrganisationSettings({ organisationId }), [organisationId]);
  const [returnUrls, setReturnUrls] = useState("");
  const [webhookUrl, setWebhookUrl] = useState("");
  const [saved, setSaved] = useState(false);
  const [secret, setSecret] = useState<string>();
  const action = useAction();
  useEffect(() => {
    setReturnUrls(settings.data?.settings?.allowedReturnUrls.join("\n") ?? "");
    setWebhookUrl(settings.data?.settings?.webhookUrl ?? "");
  }, [settings.data]);
  const current = settings.data?.settings;
  return (
    <>
      <h1>Settings of {organisationId}</h1>
      <ErrorText error={settings.error} />
      <form
        aria-label="Organisation settings"
        onSubmit={(event) => {
          event.preventDefault();
          setSaved(false);
          void action.run(async () => {
            await api.organisations.updateOrganisationSettings({
              settings: { organisationId, allowedReturnUrls: returnUrls.split("\n").map((url) => url.trim()).filter(Boolean), webhookUrl },
              updateMask: { paths: ["allowed_return_urls", "webhook_url"] },
            });
            setSaved(true);
            settings.reload();
          });
        }}
      >
        <label>
          Allowed return URLs (one per line)
          <textarea value={returnUrls} onInput={(e) => setReturnUrls(e.currentTarget.value)} />
        </label>
        <label>
          Webhook URL
          <input value={webhookUrl} onInput={(e) => setWebhookUrl(e.currentTarget.value)} />
        </label>
        <div class="actions">
          <button type="submit" disabled={action.busy}>Save settings</button>
        </div>
        {saved ? <p class="notice" role="status">Saved.</p> : null}
        <ErrorText error={action.error} />
      </form>
      <h2>Allowed return URLs now</h2>
      <ul data-testid="allowed-return-urls">
        {current?.allowedReturnUrls.map((url) => <li>{url}</li>)}
      </ul>
      <p class="muted">Last changed: {when(current?.updateTime)}. Webhook signing secrets: {current?.webhookSecretCount ?? 0}.</p>
      <h2>Webhook signing secret</h2>
      <div class="actions">
        <button
          type="button"
          class="secondary"
          onClick={() =>
            void action.run(async () => {
              setSecret((await api.organisations.rotateWebhookSecret({ organisationId })).secret);
              settings.reload();
            })
          }
        >
          Rotate webhook secret
        </button>
      </div>
      {secret !== undefined ? (
        <div class="notice" role="status">
          <p>The new signing secret, shown only this once:</p>
          <p class="secret">{secret}</p>
        </div>
      ) : null}
    </>
  );
}
