import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { ApiKeyService } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { ApiProxyService } from "../../gen/oauth2broker/v1/api_proxy_service_pb.js";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { ProviderService } from "../../gen/oauth2broker/v1/provider_service_pb.js";
import type { JwtCallers } from "../auth/jwt-callers.js";
import type { Config } from "../config.js";
import type { ConnectionLifecycle } from "../connections/connection-lifecycle.js";
import type { DeviceAuthorizations } from "../connections/device-authorizations.js";
import type { TokenRefresher } from "../connections/token-refresher.js";
import type { ApiProxy } from "../connections/api-proxy.js";
import type { ConsoleSessions } from "../console/sessions.js";
import type { SecretBox } from "../crypto/secret-box.js";
import type { EventFeed } from "../events/event-feed.js";
import { CONSOLE_RETURN_PATH } from "../http/console-routes.js";
import { authInterceptor } from "../interceptors/auth.js";
import { listingBudgetInterceptor } from "../interceptors/listing-budget.js";
import { loggingInterceptor } from "../interceptors/logging.js";
import { callerInFlightLimitInterceptor, inFlightLimitInterceptor, RateLimiter, rateLimitInterceptor } from "../interceptors/rate-limit.js";
import { hideRequestParseErrors } from "../interceptors/request-parse-errors.js";
import { requestRulesInterceptor } from "../interceptors/request-rules.js";
import { streamLimitInterceptor } from "../interceptors/stream-limits.js";
import type { OutboundPolicy } from "../network/address-policy.js";
import type { Metrics } from "../observability/metrics.js";
import type { Tracing } from "../observability/tracing.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import { apiKeyService } from "../services/api-key-service.js";
import { apiProxyService } from "../services/api-proxy-service.js";
import { connectionService } from "../services/connection-service.js";
import { credentialService } from "../services/credential-service.js";
import { deviceAuthorizationMethods } from "../services/device-authorization-service.js";
import { type HealthMonitor, healthService } from "../services/health-service.js";
import { organisationService } from "../services/organisation-service.js";
import { providerService } from "../services/provider-service.js";
import { reflectionService } from "../services/reflection-service.js";
import type { Storage } from "./storage.js";

/** How often an open stream checks that its caller's key or JWT is still good. */
const STREAM_RECHECK_MS = 2_000;

export interface RpcDeps {
  config: Config & { adminToken: string };
  storage: Storage;
  secretBox: SecretBox;
  outbound: OutboundPolicy;
  providers: ProviderCatalog;
  providerFetch: typeof fetch;
  lifecycle: ConnectionLifecycle;
  refresher: TokenRefresher;
  proxy: ApiProxy;
  deviceAuthorizations: DeviceAuthorizations;
  eventFeed: EventFeed;
  health: HealthMonitor;
  metrics: Metrics;
  logger: Logger;
}

/** Every RPC service on a router: the broker's own, health and reflection. */
export function rpcRoutes(deps: RpcDeps): (router: ConnectRouter) => void {
  const { config, storage, secretBox, outbound, providers, lifecycle, metrics, logger } = deps;
  const { credentials, organisations, apiKeys, events, leases } = storage;
  const knownOrganisationIds = async () =>
    (await Promise.all([organisations.organisationIds(), credentials.organisationIds(), apiKeys.organisationIds(), events.organisationIds()])).flat();
  return (router) => {
    router.service(CredentialService, credentialService({ credentials, secretBox, outbound, move: lifecycle, providers, fetch: deps.providerFetch, publicUrl: config.publicUrl }));
    router.service(ApiKeyService, apiKeyService(apiKeys));
    router.service(ConnectionService, {
      ...connectionService({
        credentials,
        states: storage.states,
        organisations,
        connections: storage.connections,
        events,
        eventFeed: deps.eventFeed,
        lifecycle,
        refresher: deps.refresher,
        secretBox,
        publicUrl: config.publicUrl,
        consoleReturnUrl: `${config.publicUrl}${CONSOLE_RETURN_PATH}`,
        stateTtlSeconds: config.stateTtlSeconds,
        allowHttpAuthorizeUrl: config.allowHttpAuthorizeUrl,
        providers,
      }),
      ...deviceAuthorizationMethods({ credentials, deviceAuthorizations: deps.deviceAuthorizations }),
    });
    router.service(OrganisationService, organisationService(organisations, leases, secretBox, outbound, knownOrganisationIds));
    router.service(ProviderService, providerService(providers));
    router.service(ApiProxyService, apiProxyService(deps.proxy));
    const served = [CredentialService, ConnectionService, OrganisationService, ApiKeyService, ProviderService, ApiProxyService];
    router.service(Health, healthService(deps.health, served.map((service) => service.typeName)));
    const reflection = reflectionService([...served, Health, ReflectionV1, ReflectionV1Alpha]);
    router.service(ReflectionV1, reflection);
    router.service(ReflectionV1Alpha, reflection);
    hideRequestParseErrors(router, (rpc, protocol) => {
      metrics.malformedRequests.inc({ method: rpc, protocol });
      logger.warn({ rpc, protocol, grpc_code: "internal", outcome: "malformed_request" }, "request message could not be parsed");
    });
  };
}

/**
 * The interceptors every RPC passes, in order: logging, authentication, the limits, then the
 * request rules (after authentication, so a caller without access learns nothing from them).
 */
export function rpcInterceptors(
  deps: Pick<RpcDeps, "config" | "storage" | "metrics" | "logger"> & {
    tracing: Tracing;
    jwtCallers: JwtCallers | undefined;
    consoleSessions: ConsoleSessions;
    /** Aborts when the broker shuts down (ends open streams). */
    closing: AbortSignal;
  },
): Interceptor[] {
  const { config } = deps;
  return [
    loggingInterceptor(deps.logger, deps.metrics, deps.tracing),
    authInterceptor({ adminToken: config.adminToken, apiKeys: deps.storage.apiKeys, jwtCallers: deps.jwtCallers, consoleSessions: deps.consoleSessions }),
    // Per caller first: a caller over its own cap never takes one of the instance's slots.
    callerInFlightLimitInterceptor(config.maxInFlightPerCaller),
    inFlightLimitInterceptor(config.maxInFlight),
    listingBudgetInterceptor(config.orgListingConcurrency),
    streamLimitInterceptor({
      maxPerCaller: config.maxStreamsPerCaller,
      maxLifetimeMs: config.streamMaxLifetimeSeconds * 1000,
      recheckMs: STREAM_RECHECK_MS,
      closing: deps.closing,
    }),
    rateLimitInterceptor(new RateLimiter(config.rpcRateLimit, config.rpcRateLimit * 2)),
    requestRulesInterceptor(),
  ];
}
