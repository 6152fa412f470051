import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, type ConnectRouter, createConnectRouter, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ConnectionService } from "../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../gen/oauth2broker/v1/organisation_service_pb.js";
import type { Config } from "./config.js";
import { SecretBox } from "./crypto/secret-box.js";
import { callbackRoute, oauth2Callback } from "./http/oauth2-callback.js";
import { openApiRoute } from "./http/openapi.js";
import { restInitialiseRoute } from "./http/rest-routes.js";
import { httpRoutes } from "./http/routes.js";
import { findRoot } from "./store/embedded-ferretdb.js";
import { operationalRoutes } from "./http/operational-routes.js";
import { Metrics } from "./observability/metrics.js";
import { Tracing } from "./observability/tracing.js";
import { IdTokenVerifier } from "./oauth/id-token.js";
import { boundedFetch } from "./outbound/bounded-fetch.js";
import { ApiKeyService } from "../gen/oauth2broker/v1/api_key_service_pb.js";
import { JwtCallers } from "./auth/jwt-callers.js";
import { authInterceptor } from "./interceptors/auth.js";
import { callerInFlightLimitInterceptor, inFlightLimitInterceptor, RateLimiter, rateLimitInterceptor } from "./interceptors/rate-limit.js";
import { listingBudgetInterceptor } from "./interceptors/listing-budget.js";
import { streamLimitInterceptor } from "./interceptors/stream-limits.js";
import { hideRequestParseErrors } from "./interceptors/request-parse-errors.js";
import { clientAddressKey } from "./auth/caller.js";
import { clientAddress, TrustedProxies } from "./http/client-address.js";
import { EventFeed } from "./events/event-feed.js";
import { OutboundPolicy } from "./outbound/address-policy.js";
import { apiKeyService } from "./services/api-key-service.js";
import { reflectionService } from "./services/reflection-service.js";
import { ServerReflection as ReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { ApiKeyStore, apiKeyIndexes } from "./store/api-keys.js";
import { loggingInterceptor } from "./interceptors/logging.js";
import { connectionService } from "./services/connection-service.js";
import { credentialService } from "./services/credential-service.js";
import { HealthMonitor, healthService } from "./services/health-service.js";
import { organisationService } from "./services/organisation-service.js";
import { ConnectionLifecycle } from "./connections/connection-lifecycle.js";
import { TokenRefresher } from "./connections/token-refresher.js";
import { relayOutbox, Worker } from "./events/outbox-relay.js";
import { WebhookDispatcher } from "./events/webhook-delivery.js";
import { ConnectionStore, connectionIndexes } from "./store/connections.js";
import { EventStore, eventIndexes } from "./store/events.js";
import { outboxIndexes } from "./store/outbox.js";
import { connectionExpiryIndexes } from "./store/connection-expiries.js";
import { webhookDeliveryIndexes } from "./store/webhook-deliveries.js";
import { LeaseStore, leaseIndexes } from "./store/leases.js";
import { OrganisationStore, organisationIndexes } from "./store/organisations.js";
import { CredentialStore, credentialIndexes } from "./store/credentials.js";
import { connectDatabase, type Database, ensureIndexes } from "./store/database.js";
import { OAuthStateStore } from "./store/oauth-states.js";
import { ConsoleSessionStore, consoleSessionIndexes } from "./store/console-sessions.js";
import { ConsoleSessions } from "./console/sessions.js";
import { CONSOLE_RETURN_PATH, consoleDistDir, consoleRoutes } from "./http/console-routes.js";
import { ProviderService } from "../gen/oauth2broker/v1/provider_service_pb.js";
import { loadProviderCatalog } from "./providers/catalog.js";
import { providerService } from "./services/provider-service.js";

/** Requests larger than this are refused before they are parsed. */
const READ_MAX_BYTES = 256 * 1024;
/** Request headers larger than this are refused, on both listeners. */
const MAX_HEADER_BYTES = 16 * 1024;
/** Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
const MAX_STREAMS_PER_CONNECTION = 100;
/** How often WatchConnectionEvents' shared poll looks for new events. */
const WATCH_INTERVAL_MS = 250;
/** How often an open stream checks that its caller's key or JWT is still good. */
const STREAM_RECHECK_MS = 2_000;
/** The largest provider response read (token responses, discovery documents, key sets). */
const MAX_PROVIDER_RESPONSE_BYTES = 256 * 1024;
/** How often background workers poll while they have work (retries due soon, busy leases). */
const DELIVERY_INTERVAL_MS = 200;
/** How often they look for work they were not told about while idle. */
const IDLE_INTERVAL_MS = 5_000;
/** How often the relay scans for events other (crashed) instances left behind. */
const RECOVERY_SCAN_MS = 30_000;
/** A failing refresh is retried at least this often. */
const REFRESH_RETRY_MAX_MS = 3_600_000;
/** Background (idle) refreshes per second per instance, so a large fleet does not burst. */
const IDLE_REFRESHES_PER_SECOND = 5;
/** How long in-flight calls may take to finish after SIGTERM. */
const SHUTDOWN_GRACE_MS = 10_000;

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

export async function startBroker(config: BrokerConfig, logger: Logger): Promise<Broker> {
  // A broken catalog entry stops the broker before it listens (facts are checked at start-up).
  const providers = loadProviderCatalog(findRoot(import.meta.dirname), config.providersDir);
  const metrics = new Metrics();
  const tracing = new Tracing(config.otlpEndpoint);
  const database = await connectDatabase(config.mongodbUri, config.mongodbDatabase, (command, collection, outcome, seconds) =>
    // The state store's windows, and the recent events' windows, are one collection each to metrics (bounded labels).
    metrics.dbCommands.observe({ command, collection: windowedCollection(collection), outcome }, seconds),
  );
  const credentials = new CredentialStore(database.db);
  // Drops the collections of state windows (and legacy ones) once every state in them has expired (see OAuthStateStore).
  const states = new OAuthStateStore(database.db, config.stateTtlSeconds);
  const stateMaintenance = new Worker("oauth-states-maintenance", 1_000, () => states.maintain(), logger, IDLE_INTERVAL_MS);
  const connections = new ConnectionStore(database.db);
  const organisations = new OrganisationStore(database.db);
  const events = new EventStore(database.db, config.eventRetentionSeconds * 1000);
  const leases = new LeaseStore(database.db);
  const apiKeys = new ApiKeyStore(database.db);
  const consoleSessionStore = new ConsoleSessionStore(database.db);
  await ensureIndexes(database, credentials.collection, credentialIndexes, logger);
  await ensureIndexes(database, connections.collection, connectionIndexes, logger);
  await ensureIndexes(database, organisations.collection, organisationIndexes, logger);
  await ensureIndexes(database, connections.outbox.collection, outboxIndexes, logger);
  await ensureIndexes(database, connections.expiries.collection, connectionExpiryIndexes, logger);
  await ensureIndexes(database, events.collection, eventIndexes, logger);
  await ensureIndexes(database, events.deliveries.collection, webhookDeliveryIndexes, logger);
  await ensureIndexes(database, leases.collection, leaseIndexes, logger);
  await ensureIndexes(database, apiKeys.collection, apiKeyIndexes, logger);
  await ensureIndexes(database, consoleSessionStore.collection, consoleSessionIndexes, logger);

  const secretBox = new SecretBox(config.encryptionKeys);
  const outbound = new OutboundPolicy(config.outboundAllowlist);
  const providerFetch = boundedFetch(
    { timeoutMs: config.tokenRequestTimeoutSeconds * 1000, maxResponseBytes: MAX_PROVIDER_RESPONSE_BYTES },
    outbound,
  );
  // Background work: publish outbox events, then deliver them to webhooks.
  const dispatcher = new WebhookDispatcher(
    {
      events,
      leases,
      organisations,
      secretBox,
      fetch: boundedFetch({ timeoutMs: 10_000, maxResponseBytes: 64 * 1024 }, outbound),
      retryMinMs: config.webhookRetryMinSeconds * 1000,
      logger,
    },
    () => delivery.kick(),
  );
  // Deliveries recorded as pending before `webhook_deliveries` existed are copied there once, at
  // the first poll (a scan of `events`; never repeated).
  const adoptPendingDeliveries = onceThenNever(() => events.adoptPendingDeliveries(), "adopted pending webhook deliveries", logger);
  const delivery = new Worker(
    "webhook-delivery",
    DELIVERY_INTERVAL_MS,
    async () => {
      await adoptPendingDeliveries();
      return dispatcher.poll();
    },
    logger,
    IDLE_INTERVAL_MS,
  );
  // Drops the recent-events windows the event feed no longer reads (see RecentEventStore), and
  // archives and drops the history past BROKER_EVENT_RETENTION (see EventStore.rotate).
  const eventMaintenance = new Worker(
    "events-maintenance",
    60_000,
    async () => (await events.recent.maintain()) || (await events.rotate()),
    logger,
    60_000,
  );
  // Connections this instance changed are relayed at once, by ID; a scan of the outbox notes for
  // anything pending (other instances' crashes) runs every RECOVERY_SCAN_MS. The first scan also
  // notes events written before the notes existed (a scan of `connections`, once).
  const changed = new Set<string>();
  let lastScan = 0;
  const noteUnrelayedEvents = onceThenNever(() => connections.noteUnrelayedEvents(), "noted connections with events to relay", logger);
  const relay = new Worker(
    "outbox-relay",
    DELIVERY_INTERVAL_MS,
    async () => {
      const scan = Date.now() - lastScan >= RECOVERY_SCAN_MS;
      if (!scan && changed.size === 0) return false;
      if (scan) lastScan = Date.now();
      if (scan) await noteUnrelayedEvents();
      const ids = [...changed];
      changed.clear();
      const busy = await relayOutbox(
        { connections, events, leases, organisations, onPublished: () => delivery.kick(), logger },
        scan ? undefined : ids,
      );
      for (const id of busy) changed.add(id);
      return busy.length > 0;
    },
    logger,
    IDLE_INTERVAL_MS,
  );
  const onEvent = (connectionId: string) => {
    changed.add(connectionId);
    relay.kick();
  };
  const lifecycle = new ConnectionLifecycle({
    connections,
    credentials,
    leases,
    secretBox,
    fetch: providerFetch,
    providers,
    requestTimeoutMs: config.tokenRequestTimeoutSeconds * 1000,
    confirmationTtlMs: config.stateTtlSeconds * 1000,
    retryMinMs: config.refreshRetryMinSeconds * 1000,
    retryMaxMs: REFRESH_RETRY_MAX_MS,
    giveUpMs: config.refreshGiveUpSeconds * 1000,
    onEvent,
  });
  const refresher = new TokenRefresher({
    connections,
    credentials,
    lifecycle,
    secretBox,
    fetch: providerFetch,
    providers,
    minValidityMs: config.tokenMinValiditySeconds * 1000,
    requestTimeoutMs: config.tokenRequestTimeoutSeconds * 1000,
    idleRefreshAfterMs: config.idleRefreshAfterSeconds * 1000,
    idleRefreshPerSecond: IDLE_REFRESHES_PER_SECOND,
    metrics,
    logger,
  });
  // Rarely used connections are refreshed before their refresh token lapses. The scan (of every
  // connection) runs a few times per idle period (at most every 5 minutes), and while it finds work.
  const idleRefresh = new Worker(
    "idle-refresh",
    DELIVERY_INTERVAL_MS,
    () => refresher.refreshIdle(),
    logger,
    Math.min(Math.max(refresher.shortestIdleMs / 10, DELIVERY_INTERVAL_MS), 5 * 60_000),
  );

  // Unconfirmed connections are deleted, and reconnect grants nobody confirmed dropped, when their
  // time is up, from the expiry notes (every 60 s, as MongoDB's TTL monitor would; at least twice
  // per state TTL). The first pass also notes the unconfirmed grants made before the notes existed
  // (a scan of `connections`, once).
  const noteUnconfirmed = onceThenNever(() => connections.noteUnconfirmed(), "noted unconfirmed grants for expiry", logger);
  const expiry = new Worker(
    "connection-expiry",
    DELIVERY_INTERVAL_MS,
    async () => {
      await noteUnconfirmed();
      return lifecycle.dropExpiredGrants();
    },
    logger,
    Math.min(60_000, (config.stateTtlSeconds * 1000) / 2),
  );

  // The connection directory's reconcile (a scan of `connections`) at each start, until a pass
  // finds nothing to do: listings use the directory once one has (see reconcileDirectory).
  let directoryReconciled = false;
  const directoryReconcile = new Worker(
    "connection-directory-reconcile",
    IDLE_INTERVAL_MS,
    async () => {
      if (directoryReconciled) return false;
      const { mended, busy } = await lifecycle.reconcileDirectory();
      if (mended > 0) logger.info({ count: mended }, "mended the connection directory");
      // Again at once after mending (the next pass checks the result), later when leases were busy.
      directoryReconciled = mended === 0 && busy === 0;
      return mended > 0;
    },
    logger,
    IDLE_INTERVAL_MS,
  );

  const eventFeed = new EventFeed(events, WATCH_INTERVAL_MS);
  const health = new HealthMonitor(database, logger);
  await health.start();

  const routes = (router: ConnectRouter): void => {
    router.service(
      CredentialService,
      credentialService({ credentials, secretBox, outbound, move: lifecycle, providers, fetch: providerFetch }),
    );
    router.service(ApiKeyService, apiKeyService(apiKeys));
    router.service(
      ConnectionService,
      connectionService({
        credentials,
        states,
        organisations,
        connections,
        events,
        eventFeed,
        lifecycle,
        refresher,
        secretBox,
        publicUrl: config.publicUrl,
        consoleReturnUrl: `${config.publicUrl}${CONSOLE_RETURN_PATH}`,
        stateTtlSeconds: config.stateTtlSeconds,
        allowHttpAuthorizeUrl: config.allowHttpAuthorizeUrl,
        providers,
      }),
    );
    const knownOrganisationIds = async () =>
      (await Promise.all([organisations.organisationIds(), credentials.organisationIds(), apiKeys.organisationIds(), events.organisationIds()])).flat();
    router.service(OrganisationService, organisationService(organisations, leases, secretBox, outbound, knownOrganisationIds));
    router.service(ProviderService, providerService(providers));
    const served = [CredentialService, ConnectionService, OrganisationService, ApiKeyService, ProviderService];
    router.service(Health, healthService(health, served.map((service) => service.typeName)));
    const reflection = reflectionService([...served, Health, ReflectionV1, ReflectionV1Alpha]);
    router.service(ReflectionV1, reflection);
    router.service(ReflectionV1Alpha, reflection);
    hideRequestParseErrors(router, (rpc, protocol) => {
      metrics.malformedRequests.inc({ method: rpc, protocol });
      logger.warn({ rpc, protocol, grpc_code: "internal", outcome: "malformed_request" }, "request message could not be parsed");
    });
  };
  const jwtCallers = config.jwtCallers === undefined ? undefined : new JwtCallers(config.jwtCallers, providerFetch);
  const consoleSessions = new ConsoleSessions({
    adminToken: config.adminToken,
    apiKeys,
    jwtCallers,
    sessions: consoleSessionStore,
    ttlMs: config.consoleSessionTtlSeconds * 1000,
  });
  const interceptors = [
    loggingInterceptor(logger, metrics, tracing),
    authInterceptor({ adminToken: config.adminToken, apiKeys, jwtCallers, consoleSessions }),
    // Per caller first: a caller over its own cap never takes one of the instance's slots.
    callerInFlightLimitInterceptor(config.maxInFlightPerCaller),
    inFlightLimitInterceptor(config.maxInFlight),
    listingBudgetInterceptor(config.orgListingConcurrency),
    streamLimitInterceptor({
      maxPerCaller: config.maxStreamsPerCaller,
      maxLifetimeMs: config.streamMaxLifetimeSeconds * 1000,
      recheckMs: STREAM_RECHECK_MS,
    }),
    rateLimitInterceptor(new RateLimiter(config.rpcRateLimit, config.rpcRateLimit * 2)),
  ];
  const trustedProxies = new TrustedProxies(config.trustedProxies);
  const contextValues = (req: http.IncomingMessage | http2.Http2ServerRequest) =>
    createContextValues().set(clientAddressKey, clientAddress(req.socket.remoteAddress, req.headers, trustedProxies));

  // The REST mapping runs through the same Connect handler and interceptors as the RPC.
  const restRouter = createConnectRouter({ interceptors, readMaxBytes: READ_MAX_BYTES, grpc: false, grpcWeb: false });
  routes(restRouter);
  const initialiseHandler = restRouter.handlers.find(
    (handler) => handler.requestPath === `/${ConnectionService.typeName}/${ConnectionService.method.initialiseOAuth2Connection.name}`,
  );
  if (initialiseHandler === undefined) throw new Error("InitialiseOAuth2Connection has no handler");
  const browserRoutes = httpRoutes(
    [
      callbackRoute(
        oauth2Callback({
          states,
          credentials,
          lifecycle,
          secretBox,
          idTokens: new IdTokenVerifier(providerFetch),
          fetch: providerFetch,
          providers,
          limiter: new RateLimiter(config.callbackRateLimit / 60, Math.max(1, Math.ceil(config.callbackRateLimit / 3))),
          trustedProxies,
          metrics,
          tracing,
          logger,
        }),
      ),
      restInitialiseRoute(initialiseHandler, READ_MAX_BYTES),
      openApiRoute(findRoot(import.meta.dirname)),
      ...consoleRoutes({
        sessions: consoleSessions,
        limiter: new RateLimiter(config.callbackRateLimit / 60, Math.max(1, Math.ceil(config.callbackRateLimit / 3))),
        secureCookie: config.publicUrl.startsWith("https:"),
        sessionTtlSeconds: config.consoleSessionTtlSeconds,
        distDir: consoleDistDir(findRoot(import.meta.dirname)),
      }),
      ...operationalRoutes(metrics, health),
    ],
    (error) => logger.error({ err: error }, "HTTP route failed"),
  );

  // gRPC needs HTTP/2; browsers and curl use the HTTP/1.1 gateway for Connect and gRPC-Web.
  const grpcServer = http2.createServer(
    {
      // Node's defaults are 4294967295 streams per connection and 64 KiB of headers: anonymous
      // Health/Watch streams then held ~175 MB that was not given back. RFC 9113 §6.5.2.
      settings: { maxConcurrentStreams: MAX_STREAMS_PER_CONNECTION, maxHeaderListSize: MAX_HEADER_BYTES },
    },
    refuseLargeHeaders(
      connectNodeAdapter({ routes, interceptors, contextValues, readMaxBytes: READ_MAX_BYTES, connect: false, grpcWeb: false }),
    ),
  );
  const httpServer = http.createServer(
    { maxHeaderSize: MAX_HEADER_BYTES },
    connectNodeAdapter({ routes, interceptors, contextValues, readMaxBytes: READ_MAX_BYTES, grpc: false, fallback: browserRoutes }),
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  grpcServer.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  try {
    await listen(grpcServer, config.grpcPort, config.listenHost);
    await listen(httpServer, config.httpPort, config.listenHost);
    relay.start();
    delivery.start();
    idleRefresh.start();
    stateMaintenance.start();
    eventMaintenance.start();
    expiry.start();
    directoryReconcile.start();
  } catch (error) {
    grpcServer.close();
    httpServer.close();
    health.stop();
    database.stopSweepers();
    await database.client.close();
    throw error;
  }

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      health.stop();
      const drained = Promise.all([
        new Promise<void>((resolve) => grpcServer.close(() => resolve())),
        new Promise<void>((resolve) => httpServer.close(() => resolve())),
      ]);
      // GOAWAY lets each open HTTP/2 connection finish its streams, then close.
      for (const session of sessions) session.close();
      httpServer.closeIdleConnections();
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
        httpServer.closeAllConnections();
      }, SHUTDOWN_GRACE_MS);
      await drained;
      clearTimeout(timer);
      await Promise.all([relay.stop(), delivery.stop(), idleRefresh.stop(), stateMaintenance.stop(), eventMaintenance.stop(), expiry.stop(), directoryReconcile.stop()]);
      await dispatcher.drain();
      await tracing.shutdown();
      database.stopSweepers();
      await database.client.close();
    })();
    return closing;
  };

  return {
    metrics,
    grpcPort: (grpcServer.address() as AddressInfo).port,
    httpPort: (httpServer.address() as AddressInfo).port,
    database,
    health,
    close,
  };
}

/**
 * Node advertises SETTINGS_MAX_HEADER_LIST_SIZE but does not enforce it on what it receives, so
 * the size is counted here as RFC 9113 §6.5.2 defines it (name and value octets plus 32 per
 * field) and a larger request is answered with RESOURCE_EXHAUSTED, as gRPC answers metadata over
 * its limit, before anything reads it.
 */
function refuseLargeHeaders(
  handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
): (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void {
  return (req, res) => {
    let size = 0;
    for (let i = 0; i < req.rawHeaders.length; i += 2) size += (req.rawHeaders[i]?.length ?? 0) + (req.rawHeaders[i + 1]?.length ?? 0) + 32;
    if (size <= MAX_HEADER_BYTES) return handler(req, res);
    res.writeHead(200, { "content-type": "application/grpc", "grpc-status": String(Code.ResourceExhausted), "grpc-message": "request headers too large" });
    res.end();
  };
}

function listen(server: http.Server | http2.Http2Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** A window collection's family name (its windows are one collection to metrics); any other name as it is. */
function windowedCollection(name: string): string {
  if (name.startsWith("oauth_states_")) return "oauth_states";
  if (name.startsWith("events_recent_")) return "events_recent";
  if (name.startsWith("events_until_")) return "events";
  return name;
}

/**
 * An upgrade's one-off scan (what an older version left without a note), run by a worker's first
 * tick on each instance: until it has succeeded once, every call runs it again.
 */
function onceThenNever(scan: () => Promise<number>, message: string, logger: Logger): () => Promise<void> {
  let done = false;
  return async () => {
    if (done) return;
    const count = await scan();
    if (count > 0) logger.info({ count }, message);
    done = true;
  };
}
