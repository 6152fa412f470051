import type { Logger } from "pino";
import { JwtCallers } from "./auth/jwt-callers.js";
import { addConnectionJobs, addDeviceAuthorizationJobs, addEventJobs } from "./compose/jobs.js";
import { buildConnections } from "./compose/connections.js";
import { listenGateway } from "./compose/gateway.js";
import { rpcInterceptors, rpcRoutes } from "./compose/rpc.js";
import { closeStorage, openStorage } from "./compose/storage.js";
import type { Config } from "./config.js";
import { ConsoleSessions, sessionCookieName } from "./console/sessions.js";
import { SecretBox } from "./crypto/secret-box.js";
import { EventFeed } from "./events/event-feed.js";
import { JobRegistry } from "./jobs/worker.js";
import { OutboundPolicy } from "./network/address-policy.js";
import { boundedFetch } from "./network/bounded-fetch.js";
import { TrustedProxies } from "./network/client-address.js";
import { Metrics } from "./observability/metrics.js";
import { Tracing } from "./observability/tracing.js";
import { loadProviderCatalog } from "./providers/catalog.js";
import { HealthMonitor } from "./services/health-service.js";
import type { Database } from "./store/database.js";
import { findRoot } from "./store/embedded-ferretdb.js";

/** How often WatchConnectionEvents' shared poll looks for new events. */
const WATCH_INTERVAL_MS = 250;
/** The largest provider response read (token responses, discovery documents, key sets). */
const MAX_PROVIDER_RESPONSE_BYTES = 256 * 1024;

export interface Broker {
  metrics: Metrics;
  grpcPort: number;
  httpPort: number;
  database: Database;
  health: HealthMonitor;
  /** Stops accepting calls, lets in-flight ones finish, then closes the database connection. */
  close(): Promise<void>;
}

export type BrokerConfig = Config & { mongodbUri: string; adminToken: string; encryptionKeys: NonNullable<Config["encryptionKeys"]> };

/**
 * The composition root: storage, the connection lifecycle and its jobs, the RPC services and the
 * HTTP gateway, each built by its module in compose/, then the listeners and the jobs started.
 */
export async function startBroker(config: BrokerConfig, logger: Logger): Promise<Broker> {
  const root = findRoot(import.meta.dirname);
  // A broken catalog entry stops the broker before it listens (facts are checked at start-up).
  const providers = loadProviderCatalog(root, config.providersDir);
  const metrics = new Metrics();
  const tracing = new Tracing(config.otlpEndpoint);
  const storage = await openStorage(config, metrics, logger);
  const secretBox = new SecretBox(config.encryptionKeys);
  const outbound = new OutboundPolicy(config.outboundAllowlist);
  const providerFetch = boundedFetch({ timeoutMs: config.tokenRequestTimeoutSeconds * 1000, maxResponseBytes: MAX_PROVIDER_RESPONSE_BYTES }, outbound);

  const jobs = new JobRegistry();
  const { relay, dispatcher } = addEventJobs(jobs, storage, { secretBox, outbound, webhookRetryMinMs: config.webhookRetryMinSeconds * 1000, logger });
  const { lifecycle, refresher, proxy } = buildConnections({
    config,
    storage,
    secretBox,
    providers,
    providerFetch,
    outbound,
    metrics,
    logger,
    onEvent: (connectionId) => relay.noteChanged(connectionId),
  });
  addConnectionJobs(jobs, storage, { lifecycle, refresher, stateTtlMs: config.stateTtlSeconds * 1000, logger });
  const deviceAuthorizations = addDeviceAuthorizationJobs(jobs, storage, { lifecycle, secretBox, providerFetch, providers, logger });

  const health = new HealthMonitor(storage.database, logger);
  await health.start();
  const eventFeed = new EventFeed(storage.events, WATCH_INTERVAL_MS);
  const jwtCallers = config.jwtCallers === undefined ? undefined : new JwtCallers(config.jwtCallers, providerFetch);
  const consoleSessions = new ConsoleSessions({
    adminToken: config.adminToken,
    apiKeys: storage.apiKeys,
    jwtCallers,
    sessions: storage.consoleSessions,
    ttlMs: config.consoleSessionTtlSeconds * 1000,
    cookieName: sessionCookieName(config.publicUrl.startsWith("https:")),
  });
  const rpc = { config, storage, secretBox, outbound, providers, providerFetch, lifecycle, refresher, proxy, deviceAuthorizations, eventFeed, health, metrics, logger };
  // Aborted first on close: open streams end with UNAVAILABLE instead of holding the drain.
  const closing = new AbortController();
  let listeners: Awaited<ReturnType<typeof listenGateway>>;
  try {
    listeners = await listenGateway({
      ...rpc,
      root,
      jwtCallers,
      consoleSessions,
      trustedProxies: new TrustedProxies(config.trustedProxies),
      tracing,
      routes: rpcRoutes(rpc),
      interceptors: rpcInterceptors({ config, storage, metrics, logger, tracing, jwtCallers, consoleSessions, closing: closing.signal }),
    });
    jobs.startAll();
  } catch (error) {
    health.stop();
    await closeStorage(storage);
    throw error;
  }

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      health.stop();
      closing.abort();
      await listeners.drain();
      await proxy.close();
      await jobs.stopAll();
      await dispatcher.drain();
      await tracing.shutdown();
      await closeStorage(storage);
    })();
    return closed;
  };
  return { metrics, grpcPort: listeners.grpcPort, httpPort: listeners.httpPort, database: storage.database, health, close };
}
