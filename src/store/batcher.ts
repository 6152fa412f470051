import { type Collection, type Document, type Filter, MongoNetworkTimeoutError, type WithId } from "mongodb";

/**
 * A batch that has not returned after this long fails its calls as the database being
 * unavailable, and the next batch goes: one database command that never returns (seen after
 * database restarts under CPU load, test/store/database-outage.test.ts) must not hold every later
 * call of its kind forever. Its outcome is unknown, so its calls fail rather than succeed.
 */
const BATCH_TIMEOUT_MS = 5_000;

/**
 * Group commit for one kind of database call: while a batch is out, calls that arrive queue up,
 * and leave together as the next batch when it returns. A call that finds nothing out goes at
 * once, so a quiet broker adds no latency; a busy one sends one command per round trip instead of
 * one per call, which is what the driver and the server (FerretDB's SQLite has a single writer)
 * spend their time on. Every call is in a command sent after the call was made, so a batched read
 * sees every write that finished before it.
 */
export class Batcher<In, Out> {
  readonly #queue: { input: In; resolve: (output: Out) => void; reject: (error: unknown) => void }[] = [];
  #out = 0;

  /**
   * @param run does one batch: returns one outcome per input, in order (an Error rejects that
   *   call alone), or throws to reject them all.
   */
  constructor(
    private readonly run: (inputs: In[]) => Promise<(Out | Error)[]>,
    private readonly options: { maxBatch: number; maxConcurrent: number; timeoutMs?: number },
  ) {}

  call(input: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ input, resolve, reject });
      if (this.#out < this.options.maxConcurrent) void this.#send();
    });
  }

  async #send(): Promise<void> {
    this.#out++;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.options.maxBatch);
        try {
          const outcomes = await this.#bounded(this.run(batch.map((entry) => entry.input)));
          batch.forEach((entry, i) => {
            const outcome = outcomes[i];
            if (outcome instanceof Error) entry.reject(outcome);
            else entry.resolve(outcome as Out);
          });
        } catch (error) {
          for (const entry of batch) entry.reject(error);
        }
      }
    } finally {
      this.#out--;
    }
  }

  #bounded<T>(running: Promise<T>): Promise<T> {
    const timeoutMs = this.options.timeoutMs ?? BATCH_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new MongoNetworkTimeoutError(`a database command did not return within ${timeoutMs} ms`)), timeoutMs);
    });
    // A late outcome of a batch given up on is dropped; its calls have already failed.
    running.catch(() => undefined);
    return Promise.race([running, gaveUp]).finally(() => clearTimeout(timer));
  }
}

/**
 * Looks documents up by a unique field, concurrent lookups of one value sharing one find. Each
 * caller gets a document of its own, so one caller's changes never reach another (the copies are
 * structured clones: fine for the strings, dates and booleans these collections hold, not for
 * BSON classes). By `_id`, the distinct values are separate exact finds: FerretDB 1.24 pushes only
 * an exact `_id` down to SQLite (where the wrapper's index serves it) and decodes every document
 * for an `$in`; by another field every find decodes them all there, so one `$in` is the cheaper.
 */
export function batchedLookup<T extends Document>(collection: Collection<T>, field: string): Batcher<string, WithId<T> | null> {
  return new Batcher(
    async (values: string[]) => {
      const distinct = [...new Set(values)];
      const found =
        distinct.length === 1 || field === "_id"
          ? await Promise.all(distinct.map((value) => collection.findOne({ [field]: value } as Filter<T>)))
          : await collection.find({ [field]: { $in: distinct } } as Filter<T>).toArray();
      const byValue = new Map(found.flatMap((document) => (document === null ? [] : [[document[field] as string, document] as const])));
      const handedOut = new Set<string>();
      return values.map((value) => {
        const document = byValue.get(value);
        if (document === undefined) return null;
        if (handedOut.has(value)) return structuredClone(document);
        handedOut.add(value);
        return document;
      });
    },
    { maxBatch: 500, maxConcurrent: 1 },
  );
}
