import { useState } from "preact/hooks";
import { ClientSecretSlot, type Credential, CredentialKeySource } from "../../../gen/oauth2broker/v1/credential_pb.js";
import type { Api } from "../api.js";
import { ErrorText, useAction, when } from "../ui.js";

const SLOT_NAMES = {
  [ClientSecretSlot.UNSPECIFIED]: "not yet known (no token request since the rotation began)",
  [ClientSecretSlot.CURRENT]: "the new secret",
  [ClientSecretSlot.PREVIOUS]: "the previous secret (the provider refused the new one)",
} as const;

/**
 * Client-secret rotation without downtime: the new secret is used first, the previous one kept as a
 * fallback until the rotation is ended. Shows which secret the provider last accepted.
 */
export function RotateSecret(props: { api: Api; organisationId: string; credential: Credential; onChange: () => void }) {
  const { api, organisationId, credential } = props;
  const [secret, setSecret] = useState("");
  const action = useAction();
  const id = credential.id;
  return (
    <form
      aria-label={`Rotate the secret of ${credential.name}`}
      onSubmit={(event) => {
        event.preventDefault();
        void action.run(async () => {
          await api.credentials.rotateClientSecret({ organisationId, id, clientSecret: secret });
          setSecret("");
          props.onChange();
        });
      }}
    >
      {credential.previousClientSecretSet ? (
        <p>
          A rotation is under way. Last accepted: <strong>{SLOT_NAMES[credential.clientSecretLastUsed]}</strong>.
          {credential.clientSecretFallbackTime !== undefined ? ` Last fallback to the previous secret: ${when(credential.clientSecretFallbackTime)}.` : ""}
        </p>
      ) : (
        <p class="muted">The new secret is used first; the current one is kept as a fallback until you end the rotation.</p>
      )}
      <label>
        New client secret
        <input type="password" autocomplete="off" required value={secret} onInput={(e) => setSecret(e.currentTarget.value)} />
      </label>
      <div class="actions">
        <button type="submit" disabled={action.busy}>Rotate secret</button>
        {credential.previousClientSecretSet ? (
          <button
            type="button"
            class="secondary"
            disabled={action.busy}
            onClick={() =>
              void action.run(async () => {
                await api.credentials.removePreviousClientSecret({ organisationId, id });
                props.onChange();
              })
            }
          >
            End rotation (forget the previous secret)
          </button>
        ) : null}
      </div>
      <ErrorText error={action.error} />
    </form>
  );
}

type Upload = "pem" | "jwk" | "googleServiceAccountJson";
const UPLOAD_LABELS: Record<Upload, string> = { pem: "PEM private key", jwk: "Private JWK (JSON)", googleServiceAccountJson: "Google service-account JSON key file" };

/** The credential's signing keys: the JWKS URL to register, generate or upload a key, remove one. */
export function CredentialKeys(props: { api: Api; organisationId: string; credential: Credential; onChange: () => void }) {
  const { api, organisationId, credential } = props;
  const [upload, setUpload] = useState<Upload>("pem");
  const [material, setMaterial] = useState("");
  const action = useAction();
  const credentialId = credential.id;
  const add = (key: Parameters<Api["credentials"]["addCredentialKey"]>[0]["key"]) =>
    void action.run(async () => {
      await api.credentials.addCredentialKey({ organisationId, credentialId, key });
      setMaterial("");
      props.onChange();
    });
  return (
    <div>
      {credential.jwksUri !== "" ? (
        <p>
          JWKS URL (register it with the provider): <code>{credential.jwksUri}</code>
        </p>
      ) : (
        <p class="muted">No keys yet. The newest key signs client assertions (private_key_jwt); older ones stay published until removed.</p>
      )}
      {credential.keys.length > 0 ? (
        <table>
          <thead>
            <tr><th scope="col">kid</th><th scope="col">Algorithm</th><th scope="col">Source</th><th scope="col">Added</th><th scope="col">Actions</th></tr>
          </thead>
          <tbody>
            {credential.keys.map((key, index) => (
              <tr>
                <td><code>{key.kid}</code>{index === credential.keys.length - 1 ? <div class="muted">signs</div> : null}</td>
                <td>{key.algorithm}</td>
                <td>{(CredentialKeySource[key.source] ?? "").toLowerCase().replaceAll("_", " ")}{key.serviceAccountEmail ? <div class="muted">{key.serviceAccountEmail}</div> : null}</td>
                <td>{when(key.createTime)}</td>
                <td>
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Remove key ${key.kid}`}
                    disabled={action.busy}
                    onClick={() => {
                      if (!confirm(`Remove the key ${key.kid}? It is no longer published.`)) return;
                      void action.run(async () => {
                        await api.credentials.removeCredentialKey({ organisationId, credentialId, kid: key.kid });
                        props.onChange();
                      });
                    }}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <div class="actions">
        <button type="button" disabled={action.busy} onClick={() => add({ case: "generate", value: { algorithm: "ES256" } })}>Generate ES256 key</button>
        <button type="button" class="secondary" disabled={action.busy} onClick={() => add({ case: "generate", value: { algorithm: "RS256" } })}>Generate RS256 key</button>
      </div>
      <form
        aria-label={`Upload a key for ${credential.name}`}
        onSubmit={(event) => {
          event.preventDefault();
          add({ case: upload, value: material });
        }}
      >
        <label>
          Upload
          <select value={upload} onChange={(e) => setUpload(e.currentTarget.value as Upload)}>
            {(Object.keys(UPLOAD_LABELS) as Upload[]).map((kind) => (
              <option value={kind}>{UPLOAD_LABELS[kind]}</option>
            ))}
          </select>
        </label>
        <label>
          {UPLOAD_LABELS[upload]} (never shown again)
          <textarea required rows={6} autocomplete="off" spellcheck={false} value={material} onInput={(e) => setMaterial(e.currentTarget.value)} />
        </label>
        <div class="actions">
          <button type="submit" disabled={action.busy}>Upload key</button>
        </div>
      </form>
      <ErrorText error={action.error} />
    </div>
  );
}
