/**
 * The database reads of listings and counts (ListConnections, CountConnections,
 * ListConnectionEvents and the console's views of them), at most `limit` in flight per instance,
 * organisations taking turns for the next free place. A listing is dozens of `_id` finds sent
 * together; without a cap, a few organisations listing at once put hundreds of finds in the
 * database's queue ahead of every GetAccessToken, Initialise and callback, which do not queue
 * here. Taking turns keeps one organisation's listings from holding up another's.
 */
/** Runs one find of a listing, in its turn (see `ListingReads.of`). */
export type Read = <T>(find: () => Promise<T>) => Promise<T>;

export class ListingReads {
  readonly limit: number;
  #running = 0;
  /** Waiting reads by organisation; a Map iterates in insertion order, so re-adding moves one to the back. */
  readonly #waiting = new Map<string, Array<() => void>>();

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`listing reads need a limit of at least 1, not ${limit}`);
    this.limit = limit;
  }

  async run<T>(organisationId: string, read: () => Promise<T>): Promise<T> {
    if (this.#running < this.limit) this.#running++;
    else await new Promise<void>((start) => this.#enqueue(organisationId, start));
    try {
      return await read();
    } finally {
      this.#handOn();
    }
  }

  #enqueue(organisationId: string, start: () => void): void {
    const queue = this.#waiting.get(organisationId);
    if (queue === undefined) this.#waiting.set(organisationId, [start]);
    else queue.push(start);
  }

  /** `run` for one organisation's reads. */
  of(organisationId: string): Read {
    return (find) => this.run(organisationId, find);
  }

  /** Gives the place just freed to the next organisation in turn (its oldest read), or frees it. */
  #handOn(): void {
    const next = this.#waiting.entries().next();
    if (next.done === true) {
      this.#running--;
      return;
    }
    const [organisationId, queue] = next.value;
    const start = queue.shift()!;
    this.#waiting.delete(organisationId);
    if (queue.length > 0) this.#waiting.set(organisationId, queue);
    start();
  }
}

/** Listing reads in flight per instance when no setting says otherwise (BROKER_LISTING_READS). */
export const DEFAULT_LISTING_READS = 4;
