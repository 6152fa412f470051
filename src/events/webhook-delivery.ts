import type { Logger } from "pino";
import type { SecretBox } from "../crypto/secret-box.js";
import type { EventDocument, EventStore } from "../store/events.js";
import type { LeaseStore } from "../store/leases.js";
import type { OrganisationStore } from "../store/organisations.js";
import { toWebhookPayload } from "./connection-events.js";
import { signWebhook, webhookSecretContext } from "./webhook-signature.js";

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

/**
 * Delivers published events to the organisation's webhook, at least once: an event stays
 * `pending` until the receiver answers 2xx, retried with exponential backoff (with jitter, capped
 * at an hour). The event's lease keeps two instances from posting it at the same moment; a crash
 * after the POST but before recording it means one duplicate, which receivers drop by event ID.
 */
/** Returns whether there was anything due (so the worker keeps polling briskly). */
export async function deliverDueWebhooks(deps: WebhookDeliveryDeps): Promise<boolean> {
  const due = await deps.events.findDue(new Date(), 20);
  await Promise.all(due.map((event) => deliver(deps, event)));
  return due.length > 0 || (await deps.events.hasPending());
}

async function deliver(deps: WebhookDeliveryDeps, seen: EventDocument): Promise<void> {
  const lease = await deps.leases.tryAcquire(`event:${seen._id}`, 30_000);
  if (lease === null) return;
  try {
    const event = await deps.events.findById(seen._id);
    if (event === null || event.delivery !== "pending" || event.next_attempt_time > new Date()) return;
    const organisation = await deps.organisations.findById(event.organisation_id);
    if (!organisation?.webhook_url) {
      await deps.events.recordAttempt(event._id, { delivery: "no_webhook" });
      return;
    }
    const secrets = (organisation.webhook_secrets ?? []).map((sealed) => deps.secretBox.decrypt(sealed, webhookSecretContext(organisation._id)));
    const body = JSON.stringify(toWebhookPayload(event));
    const timestamp = Math.floor(Date.now() / 1000);
    const log = deps.logger.child({ event_id: event._id, event_type: event.type, organisation_id: event.organisation_id });
    let failure: string | undefined;
    try {
      const response = await deps.fetch(organisation.webhook_url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "oauth2-broker", ...signWebhook(event._id, timestamp, body, secrets) },
        body,
      });
      if (response.status < 200 || response.status > 299) failure = `HTTP ${response.status}`;
    } catch (error) {
      failure = error instanceof Error ? error.message : "request failed";
    }
    const attempts = event.attempts + 1;
    if (failure === undefined) {
      await deps.events.recordAttempt(event._id, { delivery: "delivered", attempts, delivered_time: new Date() });
      log.info({ attempts }, "webhook delivered");
      return;
    }
    const giveUp = Date.now() - event.create_time.getTime() > GIVE_UP_AFTER_MS;
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
