import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, type ConnectRouter, createConnectRouter, createContextValues, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { clientAddressKey } from "../auth/caller.js";
import { callerIdentifier } from "../auth/identify-caller.js";
import type { JwtCallers } from "../auth/jwt-callers.js";
import type { ApiProxy } from "../connections/api-proxy.js";
import type { Config } from "../config.js";
import type { ConnectionLifecycle } from "../connections/connection-lifecycle.js";
import type { ConsoleSessions } from "../console/sessions.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { consoleDistDir, consoleRoutes } from "../http/console-routes.js";
import type { HttpHandler } from "../http/http-types.js";
import { callbackRoute, oauth2Callback } from "../http/oauth2-callback.js";
import { jwksRoute } from "../http/jwks-route.js";
import { openApiRoute } from "../http/openapi.js";
import { operationalRoutes } from "../http/operational-routes.js";
import { proxyRoute } from "../http/proxy-route.js";
import { restInitialiseRoute } from "../http/rest-routes.js";
import { httpRoutes } from "../http/routes.js";
import { RateLimiter } from "../interceptors/rate-limit.js";
import type { OutboundPolicy } from "../network/address-policy.js";
import { clientAddress, type TrustedProxies } from "../network/client-address.js";
import { IdTokenVerifier } from "../oauth/id-token.js";
import type { Metrics } from "../observability/metrics.js";
import type { Tracing } from "../observability/tracing.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import type { HealthMonitor } from "../services/health-service.js";
import type { Storage } from "./storage.js";

/** Requests larger than this are refused before they are parsed. */
const READ_MAX_BYTES = 256 * 1024;
/** Request headers larger than this are refused, on both listeners. */
const MAX_HEADER_BYTES = 16 * 1024;
/** Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
const MAX_STREAMS_PER_CONNECTION = 100;
/** How long in-flight calls may take to finish after SIGTERM. */
const SHUTDOWN_GRACE_MS = 10_000;

export interface GatewayDeps {
  config: Config & { adminToken: string };
  root: string;
  storage: Storage;
  secretBox: SecretBox;
  providers: ProviderCatalog;
  providerFetch: typeof fetch;
  outbound: OutboundPolicy;
  lifecycle: ConnectionLifecycle;
  proxy: ApiProxy;
  /** Undefined when no JWT issuer is configured. */
  jwtCallers: JwtCallers | undefined;
  consoleSessions: ConsoleSessions;
  trustedProxies: TrustedProxies;
  health: HealthMonitor;
  metrics: Metrics;
  tracing: Tracing;
  logger: Logger;
  routes: (router: ConnectRouter) => void;
  interceptors: Interceptor[];
}

/**
 * The browser-facing routes on the HTTP gateway: the OAuth callback, credentials' public JWKS,
 * the REST mapping of InitialiseOAuth2Connection (through the same Connect handler and interceptors as the RPC), the
 * OpenAPI document, the console, the operational endpoints and the provider API proxy.
 */
export function browserRoutes(deps: GatewayDeps): HttpHandler {
  const { config, storage, logger } = deps;
  const restRouter = createConnectRouter({ interceptors: deps.interceptors, readMaxBytes: READ_MAX_BYTES, grpc: false, grpcWeb: false });
  deps.routes(restRouter);
  const initialiseHandler = restRouter.handlers.find(
    (handler) => handler.requestPath === `/${ConnectionService.typeName}/${ConnectionService.method.initialiseOAuth2Connection.name}`,
  );
  if (initialiseHandler === undefined) throw new Error("InitialiseOAuth2Connection has no handler");
  const browserLimiter = () => new RateLimiter(config.callbackRateLimit / 60, Math.max(1, Math.ceil(config.callbackRateLimit / 3)));
  return httpRoutes(
    [
      callbackRoute(
        oauth2Callback({
          states: storage.states,
          credentials: storage.credentials,
          lifecycle: deps.lifecycle,
          secretBox: deps.secretBox,
          idTokens: new IdTokenVerifier(deps.providerFetch),
          fetch: deps.providerFetch,
          providers: deps.providers,
          outbound: deps.outbound,
          limiter: browserLimiter(),
          trustedProxies: deps.trustedProxies,
          metrics: deps.metrics,
          tracing: deps.tracing,
          logger,
        }),
      ),
      restInitialiseRoute(initialiseHandler, READ_MAX_BYTES),
      jwksRoute({ credentials: storage.credentials, limiter: browserLimiter(), trustedProxies: deps.trustedProxies }),
      openApiRoute(deps.root),
      ...consoleRoutes({
        sessions: deps.consoleSessions,
        limiter: browserLimiter(),
        trustedProxies: deps.trustedProxies,
        secureCookie: config.publicUrl.startsWith("https:"),
        sessionTtlSeconds: config.consoleSessionTtlSeconds,
        distDir: consoleDistDir(deps.root),
      }),
      ...operationalRoutes(deps.metrics, deps.health),
      proxyRoute({
        proxy: deps.proxy,
        identify: callerIdentifier({ adminToken: config.adminToken, apiKeys: storage.apiKeys, jwtCallers: deps.jwtCallers }),
      }),
    ],
    (error) => logger.error({ err: error }, "HTTP route failed"),
  );
}

/** Both listeners: gRPC on HTTP/2, and the HTTP/1.1 gateway (Connect, gRPC-Web and the browser routes). */
export interface Listeners {
  grpcPort: number;
  httpPort: number;
  /** Stops accepting, lets in-flight calls finish (up to a grace period), then resolves. */
  drain(): Promise<void>;
}

export async function listenGateway(deps: GatewayDeps): Promise<Listeners> {
  const { config, routes, interceptors } = deps;
  const contextValues = (req: http.IncomingMessage | http2.Http2ServerRequest) =>
    createContextValues().set(clientAddressKey, clientAddress(req.socket.remoteAddress, req.headers, deps.trustedProxies));
  // gRPC needs HTTP/2; browsers and curl use the HTTP/1.1 gateway for Connect and gRPC-Web.
  const grpcServer = http2.createServer(
    {
      // Node's defaults are 4294967295 streams per connection and 64 KiB of headers: anonymous
      // Health/Watch streams then held ~175 MB that was not given back. RFC 9113 §6.5.2.
      settings: { maxConcurrentStreams: MAX_STREAMS_PER_CONNECTION, maxHeaderListSize: MAX_HEADER_BYTES },
    },
    refuseLargeHeaders(connectNodeAdapter({ routes, interceptors, contextValues, readMaxBytes: READ_MAX_BYTES, connect: false, grpcWeb: false })),
  );
  const httpServer = http.createServer(
    { maxHeaderSize: MAX_HEADER_BYTES },
    connectNodeAdapter({ routes, interceptors, contextValues, readMaxBytes: READ_MAX_BYTES, grpc: false, fallback: browserRoutes(deps) }),
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  grpcServer.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  try {
    await listen(grpcServer, config.grpcPort, config.listenHost);
    await listen(httpServer, config.httpPort, config.listenHost);
  } catch (error) {
    grpcServer.close();
    httpServer.close();
    throw error;
  }
  return {
    grpcPort: (grpcServer.address() as AddressInfo).port,
    httpPort: (httpServer.address() as AddressInfo).port,
    async drain() {
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
    },
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
