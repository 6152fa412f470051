import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { callerKey, callerStillValidKey, clientAddressKey } from "../auth/caller.js";
import { clientLimitKey } from "../network/client-address.js";

export interface StreamLimits {
  /** Streams open at once per caller; unauthenticated ones (Health/Watch) per client address. */
  maxPerCaller: number;
  /** A stream ends with UNAVAILABLE after this long; clients open it again. */
  maxLifetimeMs: number;
  /** How often an open stream checks that its caller's credential is still good. */
  recheckMs: number;
  /** Aborts when the broker shuts down: every open stream then ends with UNAVAILABLE, so clients re-open it elsewhere and shutdown need not wait for it. */
  closing?: AbortSignal;
}

/** Aborts when the stream must end (lifetime reached, credential no longer good). */
const streamEndKey = createContextKey<AbortSignal | undefined>(undefined, { description: "stream end" });

/** The signal a streaming handler stops on: the client went away, or the stream's limits ended it. */
export function streamSignal(ctx: HandlerContext): AbortSignal {
  const end = ctx.values.get(streamEndKey);
  return end === undefined ? ctx.signal : AbortSignal.any([ctx.signal, end]);
}

/**
 * Limits server streams, which the in-flight limits do not count since they are long by design:
 * at most `maxPerCaller` open per caller, each ended after `maxLifetimeMs` with UNAVAILABLE (as
 * gRPC's own max connection age does, so clients re-open; re-opening authenticates again), and
 * ended with UNAUTHENTICATED as soon as a periodic check finds the caller's key revoked or its key
 * or JWT expired, as a unary call would be refused at once. Runs after authentication.
 */
export function streamLimitInterceptor(limits: StreamLimits): Interceptor {
  const open = new Map<string, number>();
  return (next) => async (req) => {
    if (!req.stream) return next(req);
    const key = req.contextValues.get(callerKey)?.label ?? `address:${clientLimitKey(req.contextValues.get(clientAddressKey))}`;
    const count = open.get(key) ?? 0;
    if (count >= limits.maxPerCaller) {
      throw new ConnectError("too many open streams for this caller - close one first", Code.ResourceExhausted);
    }
    open.set(key, count + 1);
    const end = new AbortController();
    const lifetime = setTimeout(
      () => end.abort(new ConnectError("the stream reached its maximum lifetime - open it again", Code.Unavailable)),
      limits.maxLifetimeMs,
    );
    const shuttingDown = (): void => end.abort(new ConnectError("the broker is shutting down - open the stream again", Code.Unavailable));
    limits.closing?.addEventListener("abort", shuttingDown, { once: true });
    if (limits.closing?.aborted === true) shuttingDown();
    const stillValid = req.contextValues.get(callerStillValidKey);
    const recheck =
      stillValid &&
      setInterval(() => {
        // A failed check (the database away) is not a verdict: the next one decides.
        void stillValid().then(
          (valid) => valid || end.abort(new ConnectError("the credential is no longer valid", Code.Unauthenticated)),
          () => undefined,
        );
      }, limits.recheckMs);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      clearTimeout(lifetime);
      clearInterval(recheck);
      limits.closing?.removeEventListener("abort", shuttingDown);
      const left = (open.get(key) ?? 1) - 1;
      if (left === 0) open.delete(key);
      else open.set(key, left);
    };
    req.signal.addEventListener("abort", release, { once: true });
    req.contextValues.set(streamEndKey, end.signal);
    try {
      const res = await next(req);
      if (!res.stream) {
        release();
        return res;
      }
      return { ...res, message: endWith(res.message, end.signal, release) };
    } catch (error) {
      release();
      throw error;
    }
  };
}

/** The handler stops on `end` (through streamSignal); the stream then ends with its reason. */
async function* endWith<T>(messages: AsyncIterable<T>, end: AbortSignal, release: () => void): AsyncGenerator<T> {
  try {
    for await (const message of messages) yield message;
    if (end.aborted) throw end.reason;
  } finally {
    release();
  }
}
