import type { Logger } from "pino";
import type { Config } from "../config.js";
import { ApiProxy } from "../connections/api-proxy.js";
import { ConnectionLifecycle } from "../connections/connection-lifecycle.js";
import { TokenRefresher } from "../connections/token-refresher.js";
import type { SecretBox } from "../crypto/secret-box.js";
import type { OutboundPolicy } from "../network/address-policy.js";
import type { Metrics } from "../observability/metrics.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import type { Storage } from "./storage.js";

/** A failing refresh is retried at least this often. */
const REFRESH_RETRY_MAX_MS = 3_600_000;
/** Background (idle) refreshes per second per instance, so a large fleet does not burst. */
const IDLE_REFRESHES_PER_SECOND = 5;

export interface ConnectionsDeps {
  config: Config;
  storage: Storage;
  secretBox: SecretBox;
  providers: ProviderCatalog;
  /** The bounded, policy-checked fetch for provider calls. */
  providerFetch: typeof fetch;
  /** The address policy that metadata values used as API hosts must pass. */
  outbound: OutboundPolicy;
  metrics: Metrics;
  logger: Logger;
  /** Called with a connection's ID when a write left events to relay. */
  onEvent: (connectionId: string) => void;
}

/**
 * The only writer of connections, the refresher that hands out fresh access tokens, and the proxy
 * that calls provider APIs with them.
 */
export function buildConnections(deps: ConnectionsDeps): { lifecycle: ConnectionLifecycle; refresher: TokenRefresher; proxy: ApiProxy } {
  const { config, storage, secretBox, providers, providerFetch } = deps;
  const { connections, credentials, leases } = storage;
  const requestTimeoutMs = config.tokenRequestTimeoutSeconds * 1000;
  const lifecycle = new ConnectionLifecycle({
    connections,
    credentials,
    leases,
    secretBox,
    fetch: providerFetch,
    providers,
    outbound: deps.outbound,
    requestTimeoutMs,
    confirmationTtlMs: config.stateTtlSeconds * 1000,
    retryMinMs: config.refreshRetryMinSeconds * 1000,
    retryMaxMs: REFRESH_RETRY_MAX_MS,
    giveUpMs: config.refreshGiveUpSeconds * 1000,
    onEvent: deps.onEvent,
  });
  const refresher = new TokenRefresher({
    connections,
    credentials,
    lifecycle,
    secretBox,
    fetch: providerFetch,
    providers,
    outbound: deps.outbound,
    minValidityMs: config.tokenMinValiditySeconds * 1000,
    requestTimeoutMs,
    idleRefreshAfterMs: config.idleRefreshAfterSeconds * 1000,
    idleRefreshPerSecond: IDLE_REFRESHES_PER_SECOND,
    metrics: deps.metrics,
    logger: deps.logger,
  });
  const { proxy: limits } = config;
  const proxy = new ApiProxy({
    refresher,
    outbound: deps.outbound,
    limits: {
      ...limits,
      timeoutMs: limits.timeoutSeconds * 1000,
      maxRetryWaitMs: limits.maxRetryWaitSeconds * 1000,
      tokenCacheMs: limits.tokenCacheSeconds * 1000,
    },
    metrics: deps.metrics,
    logger: deps.logger,
  });
  return { lifecycle, refresher, proxy };
}
