import { Code, ConnectError, type ContextValues, createContextKey, type Interceptor } from "@connectrpc/connect";
import { callerKey } from "../auth/caller.js";

/**
 * Token buckets, one per key (an API key, a client address): `ratePerSecond` sustained, bursts of
 * `burst`. Kept in memory per instance, so N instances allow N times the rate; buckets idle for a
 * minute are dropped so memory stays bounded by recent callers.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; updated: number }>();
  #lastSweep = Date.now();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
  ) {}

  /** 0 when allowed; otherwise how many seconds to wait before trying again. */
  take(key: string, now = Date.now()): number {
    this.#sweep(now);
    const bucket = this.#buckets.get(key) ?? { tokens: this.burst, updated: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.updated) / 1000) * this.ratePerSecond);
    bucket.updated = now;
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.ratePerSecond));
  }

  #sweep(now: number): void {
    if (now - this.#lastSweep < 60_000) return;
    this.#lastSweep = now;
    for (const [key, bucket] of this.#buckets) if (now - bucket.updated > 60_000) this.#buckets.delete(key);
  }
}

/** RESOURCE_EXHAUSTED, with `retry-after` in seconds, for a caller over its rate. */
export function rateLimitInterceptor(limiter: RateLimiter): Interceptor {
  return (next) => async (req) => {
    const caller = req.contextValues.get(callerKey);
    if (caller === undefined) return next(req); // health checks
    const retryAfter = limiter.take(caller.label);
    if (retryAfter > 0) {
      throw new ConnectError("rate limit exceeded - slow down", Code.ResourceExhausted, { "retry-after": String(retryAfter) });
    }
    return next(req);
  };
}

/**
 * The in-flight slots a call holds (the instance's and its caller's). A call that only waits for
 * a refresh another call is doing releases them (`releaseWorkSlots`): it costs a pending promise,
 * not work, so a thousand such waits on one connection count as the one refresh they share.
 */
const workSlotsKey = createContextKey<Array<() => void> | undefined>(undefined, { description: "in-flight slots held" });

/** Gives back the call's in-flight slots early, for a call that now only waits on shared work. */
export function releaseWorkSlots(values: ContextValues): void {
  for (const release of values.get(workSlotsKey) ?? []) release();
}

/** Holds one slot of `counter` for the call: released when it ends, or early by releaseWorkSlots. */
function holdSlot(values: ContextValues, counter: { value: number }): () => void {
  counter.value++;
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    counter.value--;
  };
  const slots = values.get(workSlotsKey) ?? [];
  slots.push(release);
  values.set(workSlotsKey, slots);
  return release;
}

/**
 * Sheds load instead of queueing it without bound: past `maxInFlight` calls being served at once
 * on this instance, new calls fail at once with RESOURCE_EXHAUSTED (callers retry with backoff).
 * Found by the benchmark: an unbounded client drove an instance to 3.8 GB before this existed.
 * Streams (WatchConnectionEvents) are not counted: streamLimitInterceptor limits them.
 */
export function inFlightLimitInterceptor(maxInFlight: number): Interceptor {
  const inFlight = { value: 0 };
  return (next) => async (req) => {
    if (req.stream) return next(req);
    if (inFlight.value >= maxInFlight) {
      throw new ConnectError("the broker is overloaded - retry shortly", Code.ResourceExhausted, { "retry-after": "1" });
    }
    const release = holdSlot(req.contextValues, inFlight);
    try {
      return await next(req);
    } finally {
      release();
    }
  };
}

/**
 * At most `maxPerCaller` calls in flight per caller, so one tenant whose calls hang (a token
 * endpoint that never answers) cannot take the whole instance's in-flight limit from the others.
 * Runs after authentication; unauthenticated calls (health checks) only count globally.
 */
export function callerInFlightLimitInterceptor(maxPerCaller: number): Interceptor {
  const perCaller = new Map<string, { value: number }>();
  return (next) => async (req) => {
    const caller = req.contextValues.get(callerKey);
    if (req.stream || caller === undefined) return next(req);
    const counter = perCaller.get(caller.label) ?? { value: 0 };
    if (counter.value >= maxPerCaller) {
      throw new ConnectError("too many calls in flight for this caller - retry shortly", Code.ResourceExhausted, { "retry-after": "1" });
    }
    perCaller.set(caller.label, counter);
    const release = holdSlot(req.contextValues, counter);
    try {
      return await next(req);
    } finally {
      release();
      if (counter.value === 0) perCaller.delete(caller.label);
    }
  };
}
