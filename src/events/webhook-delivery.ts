import type { Logger } from "pino";
import type { SecretBox } from "../crypto/secret-box.js";
import type { EventDocument } from "../store/event-document.js";
import type { EventStore } from "../store/events.js";
import type { LeaseStore } from "../store/leases.js";
import type { OrganisationStore } from "../store/organisations.js";
import { toWebhookPayload } from "./connection-events.js";
import { signWebhook } from "./webhook-signature.js";
import { webhookSecretContext } from "../crypto/secret-contexts.js";

export interface WebhookDeliveryDeps {
  events: EventStore;
  leases: LeaseStore;
  organisations: OrganisationStore;
  secretBox: SecretBox;
  /** The bounded fetch for outbound calls. */
  fetch: typeof fetch;
  retryMinMs: number;
  logger: Logger;
}

const MAX_RETRY_MS = 60 * 60 * 1000;
/** After this long an event is given up on (and stays readable in `events` as `failed`). */
const GIVE_UP_AFTER_MS = 72 * 60 * 60 * 1000;
/** Deliveries in flight to one organisation's receiver; a receiver that hangs holds only these. */
export const MAX_IN_FLIGHT_PER_RECEIVER = 4;
/** Deliveries in flight on this instance, all receivers together. */
const MAX_IN_FLIGHT = 64;
/** How many due events one poll reads. */
const POLL_BATCH = 20;

/**
 * Delivers published events to each organisation's webhook, at least once: an event stays
 * `pending` until the receiver answers 2xx, retried with exponential backoff (with jitter, capped
 * at an hour). The event's lease keeps two instances from posting it at the same moment; a crash
 * after the POST but before recording it means one duplicate, which receivers drop by event ID.
 *
 * Receivers are isolated: each organisation has at most MAX_IN_FLIGHT_PER_RECEIVER deliveries
 * in flight, and a poll skips organisations that are at their limit, so a receiver that never
 * answers delays only its own events (it once held a shared batch, delaying other tenants by 18 s).
 * `poll` starts deliveries and returns; `onSettled` is called when one finishes, to poll again.
 */
export class WebhookDispatcher {
  readonly #inFlight = new Map<string, Set<string>>(); // organisation → event IDs
  readonly #running = new Set<Promise<void>>();
  readonly #shutdown = new AbortController();

  constructor(
    private readonly deps: WebhookDeliveryDeps,
    private readonly onSettled: () => void = () => {},
  ) {}

  /** Starts the due deliveries there is room for. Returns whether anything is still to deliver. */
  async poll(): Promise<boolean> {
    const full = [...this.#inFlight].filter(([, ids]) => ids.size >= MAX_IN_FLIGHT_PER_RECEIVER).map(([id]) => id);
    const busy = [...this.#inFlight.values()].flatMap((ids) => [...ids]);
    if (busy.length >= MAX_IN_FLIGHT) return true;
    const due = await this.deps.events.deliveries.findDue(new Date(), POLL_BATCH, { organisationIds: full, eventIds: busy });
    for (const event of due) {
      if (this.#running.size >= MAX_IN_FLIGHT) break;
      const ids = this.#inFlight.get(event.organisation_id) ?? new Set<string>();
      if (ids.size >= MAX_IN_FLIGHT_PER_RECEIVER || ids.has(event._id)) continue;
      ids.add(event._id);
      this.#inFlight.set(event.organisation_id, ids);
      const running: Promise<void> = deliver(this.deps, event, this.#shutdown.signal)
        .catch((error: unknown) => this.deps.logger.warn({ err: error, event_id: event._id }, "webhook delivery failed; will retry"))
        .finally(() => {
          ids.delete(event._id);
          if (ids.size === 0 && this.#inFlight.get(event.organisation_id) === ids) this.#inFlight.delete(event.organisation_id);
          this.#running.delete(running);
          this.onSettled();
        });
      this.#running.add(running);
    }
    return due.length > 0 || this.#running.size > 0 || (await this.deps.events.deliveries.any());
  }

  /**
   * At shutdown: ends the deliveries in flight, so a receiver that hangs cannot hold the shutdown
   * up; their events stay pending, without a counted attempt, for the next instance.
   */
  async drain(): Promise<void> {
    this.#shutdown.abort();
    while (this.#running.size > 0) await Promise.all(this.#running);
  }
}

async function deliver(deps: WebhookDeliveryDeps, seen: EventDocument, shutdown: AbortSignal): Promise<void> {
  const lease = await deps.leases.tryAcquire(`event:${seen._id}`, 30_000);
  if (lease === null) return;
  try {
    // Read again under the lease: another instance may have finished it (null) or retried it.
    const event = await deps.events.deliveries.findById(seen._id);
    if (event === null || event.next_attempt_time > new Date()) return;
    const organisation = await deps.organisations.findById(event.organisation_id);
    if (!organisation?.webhook_url) {
      await deps.events.recordAttempt(event._id, { delivery: "no_webhook" });
      return;
    }
    const log = deps.logger.child({ event_id: event._id, event_type: event.type, organisation_id: event.organisation_id });
    const giveUp = Date.now() - event.create_time.getTime() > GIVE_UP_AFTER_MS;
    const sealed = organisation.webhook_secrets ?? [];
    if (sealed.length === 0) {
      // Never unsigned: a receiver could not tell the broker's events from anyone's. The event
      // waits, without counting an attempt, until RotateWebhookSecret creates the first secret.
      const wait = Math.min(deps.retryMinMs, 60_000);
      await deps.events.recordAttempt(event._id, {
        delivery: giveUp ? "failed" : "pending",
        last_error: "waiting for a webhook secret (RotateWebhookSecret)",
        next_attempt_time: new Date(Date.now() + wait),
      });
      log.debug({ retry_in_ms: wait, gave_up: giveUp }, "webhook delivery waits for a webhook secret");
      return;
    }
    const secrets = sealed.map((secret) => deps.secretBox.decrypt(secret, webhookSecretContext(organisation._id)));
    const body = JSON.stringify(toWebhookPayload(event));
    const timestamp = Math.floor(Date.now() / 1000);
    let failure: string | undefined;
    try {
      const response = await deps.fetch(organisation.webhook_url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "oauth2-broker", ...signWebhook(event._id, timestamp, body, secrets) },
        body,
        signal: shutdown,
      });
      if (response.status < 200 || response.status > 299) failure = `HTTP ${response.status}`;
    } catch (error) {
      failure = error instanceof Error ? error.message : "request failed";
    }
    if (shutdown.aborted && failure !== undefined) return;
    const attempts = event.attempts + 1;
    if (failure === undefined) {
      await deps.events.recordAttempt(event._id, { delivery: "delivered", attempts, delivered_time: new Date() });
      log.info({ attempts }, "webhook delivered");
      return;
    }
    const backoff = Math.min(deps.retryMinMs * 2 ** (attempts - 1), MAX_RETRY_MS) * (0.8 + Math.random() * 0.4);
    await deps.events.recordAttempt(event._id, {
      delivery: giveUp ? "failed" : "pending",
      attempts,
      last_error: failure,
      next_attempt_time: new Date(Date.now() + backoff),
    });
    log.warn({ attempts, error: failure, retry_in_ms: Math.round(backoff), gave_up: giveUp }, "webhook delivery failed");
  } finally {
    await deps.leases.release(lease);
  }
}
