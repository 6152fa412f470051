import type { Logger } from "pino";

/**
 * A background loop that runs `work` at once when kicked, and otherwise every `intervalMs` while
 * `work` reports it found something (returns true), every `idleIntervalMs` when it did not.
 */
export class Worker {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(
    private readonly name: string,
    private readonly intervalMs: number,
    private readonly work: () => Promise<boolean>,
    private readonly logger: Logger,
    private readonly idleIntervalMs = intervalMs,
  ) {}

  start(): void {
    this.#schedule(0);
  }

  /** Runs the work now (after the current run, if one is going). */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) this.#again = true;
    else this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#run(), delayMs);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    if (this.#stopped || this.#running !== undefined) return;
    let busy = true;
    this.#running = this.work().then(
      (found) => {
        busy = found;
      },
      (error: unknown) => this.logger.warn({ err: error, worker: this.name }, "background work failed; will retry"),
    );
    await this.#running;
    this.#running = undefined;
    if (this.#stopped) return;
    const again = this.#again;
    this.#again = false;
    this.#schedule(again ? 0 : busy ? this.intervalMs : this.idleIntervalMs);
  }
}

/**
 * Every background job of one broker instance: started together once the listeners are up, and
 * stopped together on shutdown. Adding a job is one `add`.
 */
export class JobRegistry {
  readonly #workers: Worker[] = [];

  add(worker: Worker): Worker {
    this.#workers.push(worker);
    return worker;
  }

  startAll(): void {
    for (const worker of this.#workers) worker.start();
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.#workers.map((worker) => worker.stop()));
  }
}

/**
 * An upgrade's one-off scan (what an older version left without a note), run by a worker's first
 * tick on each instance: until it has succeeded once, every call runs it again.
 */
export function onceThenNever(scan: () => Promise<number>, message: string, logger: Logger): () => Promise<void> {
  let done = false;
  return async () => {
    if (done) return;
    const count = await scan();
    if (count > 0) logger.info({ count }, message);
    done = true;
  };
}
