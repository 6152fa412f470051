import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { EventEmitter, on } from "node:events";
import type { Db } from "mongodb";
import type { Logger } from "pino";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";

const CHECK_INTERVAL_MS = 5_000;
const PING_TIMEOUT_MS = 2_000;

/**
 * Tracks whether the broker can serve: SERVING only while MongoDB answers a ping. Pings run on a
 * timer so health checks stay cheap however often load balancers call them.
 */
export class HealthMonitor {
  #status = Status.NOT_SERVING;
  #timer: NodeJS.Timeout | undefined;
  readonly #changes = new EventEmitter();
  /** Aborted on stop, which ends every Watch stream so shutdown need not wait for them. */
  readonly #stopped = new AbortController();

  constructor(
    private readonly db: Db,
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

  async check(): Promise<Status> {
    try {
      await this.db.command({ ping: 1 }, { timeoutMS: PING_TIMEOUT_MS });
      this.#set(Status.SERVING);
    } catch (error) {
      if (this.#status === Status.SERVING) this.logger.warn({ err: error }, "database ping failed");
      this.#set(Status.NOT_SERVING);
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
    if (!known.has(service)) throw new ConnectError("unknown service", Code.NotFound);
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
      for await (const status of monitor.watch(ctx.signal)) yield { status };
    },
  };
}
