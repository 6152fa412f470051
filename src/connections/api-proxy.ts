import { pipeline, Readable, Transform } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { Agent, type Dispatcher } from "undici";
import type { OutboundPolicy } from "../network/address-policy.js";
import { CallSlots, parseRetryAfter, RetryAfterMemory } from "../network/retry-after.js";
import { forwardedRequestHeaders, type HeaderList, headerBytes, returnedResponseHeaders } from "../network/proxy-headers.js";
import { proxiedUrl, withoutParameter } from "../network/proxy-path.js";
import { valueAtPath } from "../oauth/metadata-requests.js";
import type { Metrics } from "../observability/metrics.js";
import type { ConnectionApi } from "../providers/api.js";
import { ConnectionError } from "./connection-errors.js";
import type { AccessToken, TokenRefresher } from "./token-refresher.js";

/** The proxy's named limits (BROKER_PROXY_* settings). */
export interface ProxyLimits {
  /** Request and response bodies larger than this are refused or cut off. */
  maxBodyBytes: number;
  /** Request bodies up to this size are buffered, so the call can be repeated after a refresh or a 429. */
  replayBodyBytes: number;
  /** The caller's request headers, and the provider's response headers, at most. */
  maxHeaderBytes: number;
  /** A whole proxied call, its bodies included. */
  timeoutMs: number;
  maxPerOrganisation: number;
  maxPerConnection: number;
  /** Retries a caller may ask for on 429/503, and their total wait. */
  maxRetries: number;
  maxRetryWaitMs: number;
  /** How long a token the refresher handed out is reused by this instance without reading it again; 0: never. */
  tokenCacheMs: number;
}

/** Why the broker answered a proxied call itself; `status` is the HTTP status it answers with. */
export class ProxyError extends Error {
  override readonly name = "ProxyError";

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface ProxyCall {
  organisationId: string;
  connectionId: string;
  method: string;
  /** Checked by proxyTarget: stays under the API base. */
  target: { path: string; query: string };
  headers: HeaderList;
  /** Undefined: no body. */
  body: AsyncIterable<Uint8Array> | undefined;
  /** Declared body length, when the caller said. */
  bodyLength: number | undefined;
  /** What the caller asked for on 429 and 503 (attempts 0: pass them back). */
  retry: { attempts: number; maxWaitMs: number; safe: boolean };
  /** Which edge the call came through, for metrics and logs. */
  via: "http" | "grpc";
  signal?: AbortSignal;
}

export interface ProxyAnswer {
  status: number;
  headers: HeaderList;
  /** The provider's body, streamed; ends (or fails) within the call's limits. */
  body: Readable;
}

/** RFC 9110 §9.2.2: methods a retry cannot make worse. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** A body this small is read to tell a rejected token from another answer (Slack's `ok: false`). */
const REJECTION_BODY_BYTES = 64 * 1024;
/** A 429 or 503 without Retry-After is retried after this, doubled each time. */
const DEFAULT_RETRY_MS = 1_000;
/** Tokens kept at most by the per-instance cache; the oldest go first. */
const TOKEN_CACHE_ENTRIES = 10_000;

/**
 * Calls a connection's provider API for a caller: the token placed as the connection's `api`
 * says, the caller's own credentials and hop-by-hop headers taken out, redirects passed back and
 * never followed. A rejected token leads to one forced refresh (the refresher's single flight,
 * shared with concurrent callers) and one retry when the body can be sent again. A provider's
 * Retry-After is remembered per connection and path, and callers of that key are answered at once
 * until it has passed.
 */
export class ApiProxy {
  readonly #dispatcher: Agent;
  readonly #retryAfter = new RetryAfterMemory();
  readonly #perOrganisation: CallSlots;
  readonly #perConnection: CallSlots;
  /** Tokens handed out moments ago, by organisation and connection, with when they stop being reused. */
  readonly #tokens = new Map<string, { token: AccessToken; until: number }>();

  constructor(
    private readonly deps: {
      refresher: TokenRefresher;
      outbound: OutboundPolicy;
      limits: ProxyLimits;
      metrics: Metrics;
      logger: Logger;
    },
  ) {
    const { limits } = deps;
    // Every connection is checked at connect time against the outbound policy (DNS included).
    this.#dispatcher = new Agent({
      connect: { lookup: deps.outbound.lookup, timeout: limits.timeoutMs },
      headersTimeout: limits.timeoutMs,
      bodyTimeout: limits.timeoutMs,
      maxHeaderSize: limits.maxHeaderBytes,
      allowH2: false,
    });
    this.#perOrganisation = new CallSlots(limits.maxPerOrganisation);
    this.#perConnection = new CallSlots(limits.maxPerConnection);
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  /** Makes the call; the answer's body must be read or destroyed. Throws ProxyError when the broker answers itself. */
  async call(call: ProxyCall): Promise<ProxyAnswer> {
    const started = performance.now();
    const log = { method: call.method, connection_id: call.connectionId, path: call.target.path, via: call.via };
    const finish = (status: number, provider: string, answeredBy: "provider" | "broker") => {
      const seconds = (performance.now() - started) / 1000;
      const labels = { provider, status_class: `${Math.floor(status / 100)}xx`, answered_by: answeredBy };
      this.deps.metrics.proxyRequests.inc(labels);
      this.deps.metrics.proxyDuration.observe(labels, seconds);
      // Never the query, a header value or a body: they may hold secrets.
      this.deps.logger.info({ ...log, provider, status, answered_by: answeredBy, duration_ms: Math.round(seconds * 1000) }, "proxied call");
    };
    if (!this.#perOrganisation.acquire(call.organisationId)) {
      finish(429, "unknown", "broker");
      throw new ProxyError(429, "too_many_calls", "too many proxied calls in flight for this organisation (BROKER_PROXY_MAX_PER_ORGANISATION)");
    }
    if (!this.#perConnection.acquire(call.connectionId)) {
      this.#perOrganisation.release(call.organisationId);
      finish(429, "unknown", "broker");
      throw new ProxyError(429, "too_many_calls", "too many proxied calls in flight for this connection (BROKER_PROXY_MAX_PER_CONNECTION)");
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#perOrganisation.release(call.organisationId);
      this.#perConnection.release(call.connectionId);
    };
    let provider = "unknown";
    try {
      const answer = await this.#call(call, (name) => {
        provider = name;
      });
      answer.body.once("close", () => {
        release();
        finish(answer.status, provider, "provider");
      });
      return answer;
    } catch (error) {
      release();
      finish(error instanceof ProxyError ? error.status : 500, provider, "broker");
      throw error;
    }
  }

  async #call(call: ProxyCall, noteProvider: (name: string) => void): Promise<ProxyAnswer> {
    const { limits } = this.deps;
    if (headerBytes(call.headers) > limits.maxHeaderBytes) {
      throw new ProxyError(431, "headers_too_large", `the request headers are larger than ${limits.maxHeaderBytes} bytes (BROKER_PROXY_MAX_HEADER_BYTES)`);
    }
    if (call.bodyLength !== undefined && call.bodyLength > limits.maxBodyBytes) {
      throw new ProxyError(413, "body_too_large", `the request body is larger than ${limits.maxBodyBytes} bytes (BROKER_PROXY_MAX_BODY_BYTES)`);
    }
    const key = `${call.connectionId} ${call.target.path}`;
    const remembered = this.#retryAfter.waitFor(key);
    if (remembered > 0) {
      throw new ProxyError(429, "retry_after", "the provider asked to wait before calling this path again", remembered);
    }
    let token = await this.#token(call, false);
    const api = token.api;
    if (api?.base_urls[0] === undefined) {
      throw new ProxyError(409, "no_api_base", "the connection has no API base URL (its provider's catalog entry names none)");
    }
    noteProvider(api.provider ?? "custom");
    const signal = call.signal === undefined ? AbortSignal.timeout(limits.timeoutMs) : AbortSignal.any([call.signal, AbortSignal.timeout(limits.timeoutMs)]);
    const body = await bufferForReplay(call.body, limits);
    const canRepeat = body === undefined || body instanceof Uint8Array;
    let refreshed = false;
    let retries = 0;
    let waitedMs = 0;
    for (;;) {
      const sent = await this.#send(call, token, api, body, signal);
      const { rejected, response: responseBody } = await rejectsToken(sent, api);
      const response = { statusCode: sent.statusCode, headers: sent.headers, body: responseBody };
      if (rejected && !refreshed) {
        refreshed = true;
        // One forced refresh, shared with concurrent callers; its outcome sets the connection's state.
        const fresh = await this.#token(call, true).catch((error: unknown) => {
          if (error instanceof ConnectionError || error instanceof ProxyError) return undefined;
          throw error;
        });
        if (fresh !== undefined && canRepeat) {
          discard(response.body);
          token = fresh;
          continue;
        }
      }
      if (response.statusCode === 429 || response.statusCode === 503) {
        const waitMs = parseRetryAfter(headerValue(response.headers["retry-after"]));
        if (waitMs !== undefined) this.#retryAfter.remember(key, waitMs);
        const nextWaitMs = waitMs ?? DEFAULT_RETRY_MS * 2 ** retries;
        const mayRepeat = canRepeat && (IDEMPOTENT.has(call.method) || call.retry.safe);
        if (mayRepeat && retries < Math.min(call.retry.attempts, limits.maxRetries) && waitedMs + nextWaitMs <= Math.min(call.retry.maxWaitMs, limits.maxRetryWaitMs)) {
          discard(response.body);
          await sleep(nextWaitMs, undefined, { signal });
          waitedMs += nextWaitMs;
          retries += 1;
          continue;
        }
      }
      const headers = returnedResponseHeaders(toHeaderList(response.headers));
      if (headerBytes(headers) > limits.maxHeaderBytes) {
        discard(response.body);
        throw new ProxyError(502, "response_headers_too_large", `the provider's response headers are larger than ${limits.maxHeaderBytes} bytes`);
      }
      const declared = Number(headerValue(response.headers["content-length"]) ?? "0");
      if (declared > limits.maxBodyBytes) {
        discard(response.body);
        throw new ProxyError(502, "response_too_large", `the provider's response is larger than ${limits.maxBodyBytes} bytes (BROKER_PROXY_MAX_BODY_BYTES)`);
      }
      return { status: response.statusCode, headers, body: pipeline(response.body, capped(limits.maxBodyBytes, "response"), ignore) };
    }
  }

  /**
   * The connection's token through the refresher (GetAccessToken's path). A token it handed out is
   * reused for BROKER_PROXY_TOKEN_CACHE (1 s; well inside the refresher's validity margin), which
   * spares a database read per call; a rejected token is never reused (the forced refresh
   * replaces it), and a connection deleted or stopped on any instance is seen within that time.
   */
  async #token(call: ProxyCall, force: boolean): Promise<AccessToken> {
    const key = `${call.organisationId}\u0000${call.connectionId}`;
    const now = Date.now();
    const cached = this.#tokens.get(key);
    if (!force && cached !== undefined && cached.until > now) return cached.token;
    this.#tokens.delete(key);
    const token = await this.deps.refresher.getAccessToken(call.organisationId, call.connectionId, { force });
    const ttl = this.deps.limits.tokenCacheMs;
    if (ttl > 0) {
      if (this.#tokens.size >= TOKEN_CACHE_ENTRIES) this.#tokens.delete(this.#tokens.keys().next().value!);
      this.#tokens.set(key, { token, until: Math.min(now + ttl, token.expireTime?.getTime() ?? Infinity) });
    }
    return token;
  }

  async #send(
    call: ProxyCall,
    token: AccessToken,
    api: ConnectionApi,
    body: Uint8Array | Readable | undefined,
    signal: AbortSignal,
  ): Promise<Dispatcher.ResponseData> {
    const inQuery = api.token.in === "query";
    const query = inQuery ? withoutParameter(call.target.query, api.token.name) : call.target.query;
    const url = proxiedUrl(api.base_urls[0]!.url, { path: call.target.path, query });
    if (url === undefined) throw new ProxyError(400, "invalid_path", "the path leaves the connection's API base");
    if (inQuery) url.searchParams.append(api.token.name, token.accessToken);
    const refusal = this.deps.outbound.refusal(url);
    if (refusal !== undefined) throw new ProxyError(403, "destination_refused", `the API base is refused - ${refusal}`);
    const headerToken = inQuery ? undefined : { name: api.token.name, value: api.token.scheme === "" ? token.accessToken : `${api.token.scheme} ${token.accessToken}` };
    const headers = forwardedRequestHeaders(call.headers, api.headers ?? {}, headerToken);
    try {
      return await this.#dispatcher.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: call.method as Dispatcher.HttpMethod,
        headers: headers.flat(),
        body: body ?? null,
        signal,
        // A redirect goes back to the caller as it is: the token must not follow it elsewhere.
        maxRedirections: 0,
      } as Dispatcher.RequestOptions);
    } catch (error) {
      if (error instanceof ProxyError) throw error;
      const cause = String((error as Error).message ?? "");
      if (/refused: /.test(cause) || /refused: /.test(String(((error as Error).cause as Error | undefined)?.message ?? ""))) {
        throw new ProxyError(403, "destination_refused", "the API host resolves to an address the outbound policy refuses");
      }
      if (signal.aborted) throw new ProxyError(504, "timeout", `no answer within ${this.deps.limits.timeoutMs} ms (BROKER_PROXY_TIMEOUT)`);
      throw new ProxyError(502, "unreachable", "the provider's API could not be reached");
    }
  }
}

/**
 * The request body, buffered when it fits the replay limit (so the call can be repeated), or
 * streamed when it is larger: the buffered start, then the rest, counted against the body limit.
 */
async function bufferForReplay(body: AsyncIterable<Uint8Array> | undefined, limits: ProxyLimits): Promise<Uint8Array | Readable | undefined> {
  if (body === undefined) return undefined;
  const iterator = body[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done) return Buffer.concat(chunks);
    chunks.push(next.value);
    size += next.value.byteLength;
    if (size > limits.replayBodyBytes) break;
  }
  async function* rest(): AsyncGenerator<Uint8Array> {
    yield* chunks;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  }
  return pipeline(Readable.from(rest(), { objectMode: false }), capped(limits.maxBodyBytes, "request"), ignore);
}

/** Passes at most `max` bytes, then fails the stream. */
function capped(max: number, what: "request" | "response"): Transform {
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.byteLength;
      if (size > max) return callback(new ProxyError(what === "request" ? 413 : 502, "body_too_large", `the ${what} body is larger than ${max} bytes (BROKER_PROXY_MAX_BODY_BYTES)`));
      callback(null, chunk);
    },
  });
}

/**
 * Whether the answer says the token was refused: HTTP 401, or what the catalog's
 * `rejected_token` describes (Slack: HTTP 200 with `"error": "invalid_auth"`). A body read to
 * decide is handed back whole.
 */
async function rejectsToken(response: Dispatcher.ResponseData, api: ConnectionApi): Promise<{ rejected: boolean; response: Readable }> {
  if (response.statusCode === 401) return { rejected: true, response: response.body };
  const rule = api.rejected_token;
  if (rule === undefined || !(rule.status ?? [401]).includes(response.statusCode)) return { rejected: false, response: response.body };
  if (rule.body_field === undefined) return { rejected: true, response: response.body };
  const contentType = headerValue(response.headers["content-type"]) ?? "";
  if (!/json/i.test(contentType)) return { rejected: false, response: response.body };
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.byteLength;
    if (size > REJECTION_BODY_BYTES) {
      // Too large to be an error answer: pass it on, what was read first.
      const rest = response.body;
      return { rejected: false, response: Readable.from((async function* () { yield* chunks; yield* rest; })()) };
    }
  }
  const text = Buffer.concat(chunks);
  let value: unknown;
  try {
    value = valueAtPath(JSON.parse(text.toString("utf8")), rule.body_field);
  } catch {
    value = undefined;
  }
  const rejected = typeof value === "string" && (rule.body_values ?? []).includes(value);
  return { rejected, response: Readable.from([text]) };
}

/** A body not passed on: closed, its abort error expected. */
function discard(body: Readable): void {
  body.on("error", ignore);
  body.destroy();
}

/** Stream errors already handled where the stream ends (the caller's response, undici's request). */
function ignore(): void {}

function toHeaderList(headers: Record<string, string | string[] | undefined>): HeaderList {
  const list: HeaderList = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) list.push([name, one]);
  }
  return list;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
