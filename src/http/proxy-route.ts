import { pipeline } from "node:stream/promises";
import type { Identified } from "../auth/identify-caller.js";
import { type ApiProxy, ProxyError } from "../connections/api-proxy.js";
import { ConnectionError } from "../connections/connection-errors.js";
import type { HeaderList } from "../network/proxy-headers.js";
import { proxyTarget } from "../network/proxy-path.js";
import type { HttpRequest, HttpResponse, HttpRoute } from "./http-types.js";

const PREFIX = "/proxy/";
/** Connection and organisation IDs, as the RPCs accept them (but never a `.` or `..` segment). */
const IDENTIFIER = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$/;

/** HTTP statuses for the refresher's refusals. */
const CONNECTION_ERROR_STATUS: Partial<Record<ConnectionError["code"], number>> = {
  not_found: 404,
  pending: 409,
  needs_reauthorization: 409,
  refresh_failed: 503,
  refresh_timeout: 503,
  busy: 503,
};

export interface ProxyRouteDeps {
  proxy: ApiProxy;
  identify: (token: string) => Promise<Identified | undefined>;
}

/**
 * `/proxy/<connection_id>/<path…>`: the caller's request, sent to the connection's API base with
 * its token (see ApiProxy). The caller authenticates as for the RPCs (`Authorization: Bearer` with
 * an API key, a JWT or the admin token); an admin names the organisation in
 * `X-Broker-Organisation`. A connection of another organisation is not found.
 * `X-Broker-Retry: <attempts>` (with `X-Broker-Retry-Max-Wait: <seconds>` and, for a
 * non-idempotent method, `X-Broker-Retry-Safe: true`) asks the broker to wait out 429 and 503.
 */
export function proxyRoute(deps: ProxyRouteDeps): HttpRoute {
  return {
    matches: (path) => path.startsWith(PREFIX),
    handle: async (req, res) => {
      try {
        await handle(deps, req, res);
      } catch (error) {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (error instanceof ProxyError) return refuse(res, error.status, error.code, error.message, error.retryAfterMs);
        if (error instanceof ConnectionError && CONNECTION_ERROR_STATUS[error.code] !== undefined) {
          return refuse(res, CONNECTION_ERROR_STATUS[error.code]!, error.code, error.message, error.retryAfterMs);
        }
        throw error;
      }
    },
  };
}

async function handle(deps: ProxyRouteDeps, req: HttpRequest, res: HttpResponse): Promise<void> {
  const raw = req.url ?? "/";
  const queryAt = raw.indexOf("?");
  const rawPath = (queryAt === -1 ? raw : raw.slice(0, queryAt)).slice(PREFIX.length);
  const rawQuery = queryAt === -1 ? "" : raw.slice(queryAt + 1);
  const slash = rawPath.indexOf("/");
  const connectionId = slash === -1 ? rawPath : rawPath.slice(0, slash);
  if (!IDENTIFIER.test(connectionId)) throw new ProxyError(400, "invalid_path", "the path must start with /proxy/<connection_id>/");
  const target = proxyTarget(slash === -1 ? "" : rawPath.slice(slash), rawQuery);
  if ("refusal" in target) throw new ProxyError(400, "invalid_path", target.refusal);

  const match = /^Bearer ([\x21-\x7e]{1,4096})$/i.exec(headerOf(req, "authorization") ?? "");
  const identified = match?.[1] === undefined ? undefined : await deps.identify(match[1]);
  if (identified === undefined) throw new ProxyError(401, "unauthenticated", 'a valid bearer token is required in the "authorization" header');
  let organisationId: string;
  if (identified.caller.kind === "admin") {
    const named = headerOf(req, "x-broker-organisation");
    if (named === undefined || !IDENTIFIER.test(named)) {
      throw new ProxyError(400, "organisation_required", 'an admin caller names the organisation in the "x-broker-organisation" header');
    }
    organisationId = named;
  } else {
    organisationId = identified.caller.organisationId;
  }

  const headers: HeaderList = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
  const length = headerOf(req, "content-length");
  const hasBody = length !== undefined ? length !== "0" : headerOf(req, "transfer-encoding") !== undefined;
  const abort = new AbortController();
  // The caller went away before the answer was sent: stop the provider call too.
  res.once("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  const answer = await deps.proxy.call({
    organisationId,
    connectionId,
    method: req.method ?? "GET",
    target,
    headers,
    body: hasBody ? req : undefined,
    bodyLength: length === undefined ? undefined : Number(length),
    retry: retryOptions(req),
    via: "http",
    signal: abort.signal,
  });
  res.statusCode = answer.status;
  const grouped = new Map<string, string[]>();
  for (const [name, value] of answer.headers) grouped.set(name, [...(grouped.get(name) ?? []), value]);
  for (const [name, values] of grouped) res.setHeader(name, values.length === 1 ? values[0]! : values);
  await pipeline(answer.body, res).catch(() => {
    // A body cut off (limit, timeout, provider gone) ends the caller's response early; nothing more to send.
    res.destroy();
  });
}

function retryOptions(req: HttpRequest): { attempts: number; maxWaitMs: number; safe: boolean } {
  const attempts = Number(headerOf(req, "x-broker-retry") ?? "0");
  const maxWait = Number(headerOf(req, "x-broker-retry-max-wait") ?? "10");
  return {
    attempts: Number.isInteger(attempts) && attempts > 0 ? attempts : 0,
    maxWaitMs: Number.isFinite(maxWait) && maxWait > 0 ? maxWait * 1000 : 0,
    safe: headerOf(req, "x-broker-retry-safe") === "true",
  };
}

function headerOf(req: HttpRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The broker's own answer: JSON naming the reason, never a token or a query value. */
function refuse(res: HttpResponse, status: number, code: string, message: string, retryAfterMs?: number): void {
  res.setHeader("Content-Type", "application/json");
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("X-Broker-Error", code);
  if (retryAfterMs !== undefined) res.setHeader("Retry-After", String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
  if (status === 401) res.setHeader("WWW-Authenticate", "Bearer");
  res.writeHead(status);
  res.end(JSON.stringify({ error: code, message }));
}
