import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ConnectionStatus } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { errorText } from "./api.js";

/** Client-side navigation inside /console: pages are plain links that keep the history. */
export function navigate(path: string): void {
  history.pushState(null, "", path);
  dispatchEvent(new PopStateEvent("popstate"));
}

export function Link(props: { href: string; children: ComponentChildren; current?: boolean }) {
  return (
    <a
      href={props.href}
      aria-current={props.current ? "page" : undefined}
      onClick={(event) => {
        if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
        event.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}

/** Loads data for a page; `reload` fetches it again after a change. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): { data?: T; error?: string; reload: () => void } {
  const [state, setState] = useState<{ data?: T; error?: string }>({});
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (data) => live && setState({ data }),
      (error: unknown) => live && setState({ error: errorText(error) }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { ...state, reload: useCallback(() => setTick((n) => n + 1), []) };
}

export function ErrorText(props: { error?: string }) {
  return props.error ? <p class="error" role="alert">{props.error}</p> : null;
}

export function when(timestamp: Timestamp | undefined): string {
  return timestamp === undefined ? "—" : timestampDate(timestamp).toLocaleString();
}

export function statusName(status: ConnectionStatus): string {
  return ConnectionStatus[status] ?? "UNSPECIFIED";
}

export function Status(props: { status: ConnectionStatus }) {
  const name = statusName(props.status);
  return <span class={`status-${name}`}>{name.replaceAll("_", " ").toLowerCase()}</span>;
}

/** Runs an action from a form or button, showing its error. */
export function useAction(): { busy: boolean; error?: string; run: (action: () => Promise<void>) => Promise<void> } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await action();
    } catch (caught) {
      setError(errorText(caught));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run };
}
