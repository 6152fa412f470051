import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { type Api, apiFor, currentSession, type Session, signIn, signOut } from "./api.js";
import { ApiKeysPage } from "./pages/api-keys.js";
import { ConnectionPage, ConnectionsPage } from "./pages/connections.js";
import { CredentialsPage } from "./pages/credentials.js";
import { FlowResultPage } from "./pages/flow-result.js";
import { OverviewPage } from "./pages/overview.js";
import { SettingsPage } from "./pages/settings.js";
import { ErrorText, Link, useAction, useLoad } from "./ui.js";

function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    addEventListener("popstate", update);
    return () => removeEventListener("popstate", update);
  }, []);
  return path;
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  useEffect(() => {
    currentSession().then((found) => setSession(found ?? null), () => setSession(null));
  }, []);
  if (session === undefined) return <p>Loading…</p>;
  if (session === null) return <SignIn onSignedIn={setSession} />;
  return <SignedIn session={session} onSignedOut={() => setSession(null)} />;
}

function SignIn(props: { onSignedIn: (session: Session) => void }) {
  const [key, setKey] = useState("");
  const action = useAction();
  return (
    <main>
      <h1>oauth2-broker console</h1>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void action.run(async () => props.onSignedIn(await signIn(key)));
        }}
      >
        <label>
          API key or admin token
          <input type="password" name="key" autocomplete="off" required value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        </label>
        <p class="muted">The key is exchanged for a session that ends when you sign out or after an hour; it is not stored in the browser.</p>
        <div class="actions">
          <button type="submit" disabled={action.busy}>Sign in</button>
        </div>
        <ErrorText error={action.error} />
      </form>
    </main>
  );
}

function SignedIn(props: { session: Session; onSignedOut: () => void }) {
  const path = usePath();
  const api: Api = apiFor(props.session, props.onSignedOut);
  const organisations = useLoad(() => api.organisations.listOrganisations({}), [props.session]);
  const [chosen, setChosen] = useState(new URLSearchParams(location.search).get("org") ?? "");
  const [other, setOther] = useState("");
  const admin = props.session.caller.admin;
  const ids = organisations.data?.organisationIds ?? [];
  const organisationId = admin ? chosen || ids[0] || "" : props.session.caller.organisationId;
  const nav: Array<[string, string]> = [
    ["/console", "Overview"],
    ["/console/credentials", "Credentials"],
    ["/console/connections", "Connections"],
    ...(admin ? ([["/console/api-keys", "API keys"]] as Array<[string, string]>) : []),
    ["/console/settings", "Settings"],
  ];
  const current = (href: string) => (href === "/console" ? path === "/console" || path === "/console/" : path.startsWith(href));
  return (
    <>
      <header>
        <span class="brand">oauth2-broker</span>
        <nav aria-label="Sections">
          {nav.map(([href, label]) => (
            <Link href={href} current={current(href)}>{label}</Link>
          ))}
        </nav>
        <span class="spacer" />
        {admin ? (
          <form
            class="inline"
            onSubmit={(event) => {
              event.preventDefault();
              if (other !== "") setChosen(other);
            }}
          >
            <label for="organisation">Organisation</label>
            <select id="organisation" value={organisationId} onChange={(e) => setChosen(e.currentTarget.value)}>
              {[...new Set([...ids, ...(organisationId ? [organisationId] : [])])].map((id) => (
                <option value={id}>{id}</option>
              ))}
            </select>
            <label>
              Other organisation
              <input value={other} size={12} onInput={(e) => setOther(e.currentTarget.value)} />
            </label>
            <button type="submit" class="secondary">Open</button>
          </form>
        ) : (
          <span>Organisation: {organisationId}</span>
        )}
        <span class="muted">Signed in as {props.session.caller.label}</span>
        <button
          type="button"
          class="secondary"
          onClick={() => {
            void signOut(props.session).finally(props.onSignedOut);
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <ErrorText error={organisations.error} />
        {organisationId === "" ? (
          <p>Choose or type an organisation to work in.</p>
        ) : (
          <Page path={path} api={api} organisationId={organisationId} admin={admin} />
        )}
      </main>
    </>
  );
}

function Page(props: { path: string; api: Api; organisationId: string; admin: boolean }) {
  const { path, api, organisationId } = props;
  const connection = /^\/console\/connections\/([^/]+)$/.exec(path)?.[1];
  if (connection !== undefined) return <ConnectionPage api={api} organisationId={organisationId} id={decodeURIComponent(connection)} />;
  if (path.startsWith("/console/connections")) return <ConnectionsPage api={api} organisationId={organisationId} />;
  if (path.startsWith("/console/credentials")) return <CredentialsPage api={api} organisationId={organisationId} />;
  if (path.startsWith("/console/api-keys") && props.admin) return <ApiKeysPage api={api} organisationId={organisationId} />;
  if (path.startsWith("/console/settings")) return <SettingsPage api={api} organisationId={organisationId} />;
  if (path.startsWith("/console/flow-result")) return <FlowResultPage api={api} organisationId={organisationId} />;
  return <OverviewPage api={api} organisationId={organisationId} />;
}

const root = document.getElementById("app");
if (root !== null) {
  root.textContent = "";
  render(<App />, root);
}
