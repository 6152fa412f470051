/** RFC 9110 §10.2.3: seconds, or an HTTP date. Milliseconds from `now`, or undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * What providers said about waiting, per instance: until a key's time has passed, callers of that
 * key are answered at once instead of calling the provider again. Keys are connection and path
 * (Slack's limits are per method). Bounded: the oldest entries go first, and waits are capped.
 */
export class RetryAfterMemory {
  readonly #until = new Map<string, number>();

  constructor(
    private readonly maxEntries = 10_000,
    private readonly maxWaitMs = 3_600_000,
  ) {}

  remember(key: string, waitMs: number, now = Date.now()): void {
    if (waitMs <= 0) return;
    this.#until.delete(key);
    if (this.#until.size >= this.maxEntries) this.#until.delete(this.#until.keys().next().value!);
    this.#until.set(key, now + Math.min(waitMs, this.maxWaitMs));
  }

  /** Milliseconds left to wait on `key`; 0 when none. */
  waitFor(key: string, now = Date.now()): number {
    const until = this.#until.get(key);
    if (until === undefined) return 0;
    if (until <= now) {
      this.#until.delete(key);
      return 0;
    }
    return until - now;
  }
}

/**
 * Calls in flight per key (an organisation, a connection), each key with its own ceiling.
 * `acquire` says whether a slot was taken; each taken slot is given back with `release`.
 */
export class CallSlots {
  readonly #counts = new Map<string, number>();

  constructor(private readonly max: number) {}

  acquire(key: string): boolean {
    const count = this.#counts.get(key) ?? 0;
    if (count >= this.max) return false;
    this.#counts.set(key, count + 1);
    return true;
  }

  release(key: string): void {
    const count = (this.#counts.get(key) ?? 1) - 1;
    if (count <= 0) this.#counts.delete(key);
    else this.#counts.set(key, count);
  }
}
