import type { Logger } from "pino";
import type { ConnectionLifecycle } from "../connections/connection-lifecycle.js";
import { DeviceAuthorizations } from "../connections/device-authorizations.js";
import type { TokenRefresher } from "../connections/token-refresher.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { OutboxRelayJob } from "../events/outbox-relay.js";
import { WebhookDispatcher } from "../events/webhook-delivery.js";
import { type JobRegistry, onceThenNever, Worker } from "../jobs/worker.js";
import type { OutboundPolicy } from "../network/address-policy.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import { boundedFetch } from "../network/bounded-fetch.js";
import type { Storage } from "./storage.js";

/** How often background workers poll while they have work (retries due soon, busy leases). */
export const BUSY_INTERVAL_MS = 200;
/** How often they look for work they were not told about while idle. */
const IDLE_INTERVAL_MS = 5_000;

/** The event pipeline's jobs: relay connection events from the outbox, then deliver them to webhooks. */
export interface EventJobs {
  relay: OutboxRelayJob;
  dispatcher: WebhookDispatcher;
}

export function addEventJobs(
  jobs: JobRegistry,
  { events, leases, organisations, connections, states }: Storage,
  deps: { secretBox: SecretBox; outbound: OutboundPolicy; webhookRetryMinMs: number; logger: Logger },
): EventJobs {
  const { logger } = deps;
  const dispatcher = new WebhookDispatcher(
    {
      events,
      leases,
      organisations,
      secretBox: deps.secretBox,
      fetch: boundedFetch({ timeoutMs: 10_000, maxResponseBytes: 64 * 1024 }, deps.outbound),
      retryMinMs: deps.webhookRetryMinMs,
      logger,
    },
    () => delivery.kick(),
  );
  // Deliveries recorded as pending before `webhook_deliveries` existed are copied there once, at
  // the first poll (a scan of `events`; never repeated).
  const adoptPendingDeliveries = onceThenNever(() => events.adoptPendingDeliveries(), "adopted pending webhook deliveries", logger);

  const delivery = jobs.add(
    new Worker(
      "webhook-delivery",
      BUSY_INTERVAL_MS,
      async () => {
        await adoptPendingDeliveries();
        return dispatcher.poll();
      },
      logger,
      IDLE_INTERVAL_MS,
    ),
  );
  const relay = new OutboxRelayJob(
    { connections, events, leases, organisations, onPublished: () => delivery.kick(), logger },
    BUSY_INTERVAL_MS,
    IDLE_INTERVAL_MS,
  );
  jobs.add(relay.worker);
  // Drops the recent-events windows the event feed no longer reads (see RecentEventStore), and
  // archives and drops the history past BROKER_EVENT_RETENTION (see EventStore.rotate). First,
  // events stored before the event index get their slots, once (until then their listings read
  // `events` by organisation).
  const adoptIntoIndex = onceThenNever(() => events.adoptIntoIndex(), "gave stored events their event index slots", logger);
  jobs.add(
    new Worker(
      "events-maintenance",
      60_000,
      async () => {
        await adoptIntoIndex();
        return (await events.recent.maintain()) || (await events.rotate());
      },
      logger,
      60_000,
    ),
  );
  // Drops the collections of state windows once every state in them has expired.
  jobs.add(new Worker("oauth-states-maintenance", 1_000, () => states.maintain(), logger, IDLE_INTERVAL_MS));
  return { relay, dispatcher };
}

/** The connections' own jobs: idle refreshes, and expiry of what nobody confirmed. */
export function addConnectionJobs(
  jobs: JobRegistry,
  { connections }: Storage,
  deps: { lifecycle: ConnectionLifecycle; refresher: TokenRefresher; stateTtlMs: number; logger: Logger },
): void {
  const { lifecycle, refresher, logger } = deps;
  // Rarely used connections are refreshed before their refresh token lapses. The scan runs ten
  // times per idle period, at least hourly, and while it finds work. Not more often: on the
  // embedded FerretDB it reads every connection (seconds at 100 000), and an idle period is days.
  jobs.add(
    new Worker(
      "idle-refresh",
      BUSY_INTERVAL_MS,
      () => refresher.refreshIdle(),
      logger,
      Math.min(Math.max(refresher.shortestIdleMs / 10, BUSY_INTERVAL_MS), 60 * 60_000),
    ),
  );
  // Unconfirmed connections are deleted, and reconnect grants nobody confirmed dropped, when their
  // time is up, from the expiry notes (every 60 s, as MongoDB's TTL monitor would; at least twice
  // per state TTL). The first pass also notes the unconfirmed grants made before the notes existed.
  const noteUnconfirmed = onceThenNever(() => connections.noteUnconfirmed(), "noted unconfirmed grants for expiry", logger);
  jobs.add(
    new Worker(
      "connection-expiry",
      BUSY_INTERVAL_MS,
      async () => {
        await noteUnconfirmed();
        return lifecycle.dropExpiredGrants();
      },
      logger,
      Math.min(60_000, deps.stateTtlMs / 2),
    ),
  );
  // The connection directory's reconcile (a scan of `connections`) at each start, until a pass
  // finds nothing to do: listings use the directory once one has (see reconcileDirectory).
  let directoryReconciled = false;
  jobs.add(
    new Worker(
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
    ),
  );
}

/**
 * The device authorization grant's poller (RFC 8628): polls the token endpoint for each device
 * code that is due, reading only `device_authorizations`. Looks every second: polls are due every
 * `interval` (5 s unless the provider says), so none waits much past its time.
 */
export function addDeviceAuthorizationJobs(
  jobs: JobRegistry,
  { deviceAuthorizations, connections, credentials }: Storage,
  deps: { lifecycle: ConnectionLifecycle; secretBox: SecretBox; providerFetch: typeof fetch; providers: ProviderCatalog; logger: Logger },
): DeviceAuthorizations {
  const flows = new DeviceAuthorizations({
    deviceAuthorizations,
    connections,
    credentials,
    lifecycle: deps.lifecycle,
    secretBox: deps.secretBox,
    fetch: deps.providerFetch,
    providers: deps.providers,
    logger: deps.logger,
  });
  jobs.add(new Worker("device-authorization-poll", BUSY_INTERVAL_MS, () => flows.pollDue(), deps.logger, 1_000));
  return flows;
}
