import type { ServiceImpl } from "@connectrpc/connect";
import { DomainError } from "../errors.js";
import { EventEmitter, on } from "node:events";
import { setTimeout } from "node:timers/promises";
import type { Logger } from "pino";
import type { Database } from "../store/database.js";
import { streamSignal } from "../interceptors/stream-limits.js";
import { type Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";

const CHECK_INTERVAL_MS = 5_000;
const PING_TIMEOUT_MS = 2_000;
/** How long pings may fail before a new client is asked whether the database is really away. */
const STALLED_AFTER_MS = 15_000;

/**
 * Tracks whether the broker can serve: SERVING only while MongoDB answers a ping. Pings run on a
 * timer so health checks stay cheap however often load balancers call them.
 *
 * It also restarts a stalled driver. Seen about once in ten database restarts under CPU load
 * (test/store/database-outage.test.ts): after the server went away the driver's monitor sent no
 * heartbeat at all for over a minute, every call failed server selection, and a new client
 * reached the restarted database at once. So when pings have failed for STALLED_AFTER_MS and a
 * new client gets through, the client is closed and connected again.
 */
export class HealthMonitor {
  #status = Status.NOT_SERVING;
  #failingSince: number | undefined;
  #checking: Promise<Status> | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #changes = new EventEmitter();
  /** Aborted on stop, which ends every Watch stream so shutdown need not wait for them. */
  readonly #stopped = new AbortController();

  constructor(
    private readonly database: Database,
    private readonly logger: Logger,
  ) {
    this.#changes.setMaxListeners(0);
  }

  get status(): Status {
    return this.#status;
  }

  async start(): Promise<void> {
    await this.check();
    this.#timer = setInterval(() => void this.check(), CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Reports NOT_SERVING from now on, for example while shutting down. */
  stop(): void {
    clearInterval(this.#timer);
    this.#set(Status.NOT_SERVING);
    this.#stopped.abort();
  }

  /** Pings now (a check already running is shared, so slow ones never pile up). */
  check(): Promise<Status> {
    this.#checking ??= this.#check().finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  async #check(): Promise<Status> {
    try {
      await this.database.db.command({ ping: 1 }, { timeoutMS: PING_TIMEOUT_MS });
      this.#failingSince = undefined;
      this.#set(Status.SERVING);
    } catch (error) {
      if (this.#status === Status.SERVING) this.logger.warn({ err: error }, "database ping failed");
      this.#set(Status.NOT_SERVING);
      this.#failingSince ??= Date.now();
      const stalled = Date.now() - this.#failingSince >= STALLED_AFTER_MS && (await this.database.answersNewClient());
      if (stalled && !this.#stopped.signal.aborted) {
        this.logger.error("the database answers a new client but not the broker's: reconnecting");
        this.#failingSince = undefined;
        // Bounded, so a close that waits on a dead connection never stops the health checks.
        const gaveUp = setTimeout(PING_TIMEOUT_MS * 5, "timed out", { ref: false });
        const outcome = await Promise.race([this.database.reconnect().then(() => "done", (e: unknown) => e), gaveUp]);
        if (outcome !== "done") this.logger.warn({ err: outcome }, "reconnecting failed; will retry");
      }
    }
    return this.#status;
  }

  /** Yields the current status, then every change, until `signal` aborts or the monitor stops. */
  async *watch(signal: AbortSignal): AsyncGenerator<Status> {
    const until = AbortSignal.any([signal, this.#stopped.signal]);
    const changes = on(this.#changes, "change", { signal: until });
    yield this.#status;
    try {
      for await (const [status] of changes) yield status as Status;
    } catch (error) {
      if (!until.aborted) throw error;
    }
  }

  #set(status: Status): void {
    if (status === this.#status) return;
    this.#status = status;
    if (status === Status.SERVING) this.logger.info("serving");
    this.#changes.emit("change", status);
  }
}

/** The service names health checks may ask about: "" for the whole server, or one service. */
export function healthService(monitor: HealthMonitor, serviceNames: readonly string[]): ServiceImpl<typeof Health> {
  const known = new Set(["", ...serviceNames]);
  const requireKnown = (service: string): void => {
    if (!known.has(service)) throw new DomainError("not_found", "unknown service");
  };
  return {
    check(req) {
      requireKnown(req.service);
      return { status: monitor.status };
    },
    async *watch(req, ctx) {
      if (!known.has(req.service)) {
        yield { status: Status.SERVICE_UNKNOWN };
        return;
      }
      for await (const status of monitor.watch(streamSignal(ctx))) yield { status };
    },
  };
}
