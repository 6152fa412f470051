import type { Logger } from "pino";
import type { ConnectionStore } from "../store/connections.js";
import type { EventStore } from "../store/events.js";
import { connectionLeaseKey, type LeaseStore } from "../store/leases.js";
import { onceThenNever, Worker } from "../jobs/worker.js";
import type { OrganisationStore } from "../store/organisations.js";

/** An outbox note for a connection that is not there is dropped after this long (see relayOutbox). */
const NOTE_GRACE_MS = 60_000;

export interface OutboxRelayDeps {
  connections: ConnectionStore;
  events: EventStore;
  leases: LeaseStore;
  organisations: OrganisationStore;
  /** Called after events were published, so delivery starts now. */
  onPublished: () => void;
  logger: Logger;
}

/**
 * Publishes the events written into connection documents (the outbox) to the `events`
 * collection, then clears them; a deleted connection is removed once its last event is out.
 * `ids` are the connections this instance just changed (looked up by _id); without them it reads
 * the outbox notes (a small collection of the connections with events still to publish, see
 * OutboxStore), which recovers those of crashed instances. Returns the IDs it could not take the
 * lease of, to try again.
 * Publishing is idempotent (the event's ID is the _id), so a relay that crashes half-way, or two
 * instances relaying at once, publish each event once. Runs under the connection's lease, like
 * every other write to a connection.
 */
export async function relayOutbox(deps: OutboxRelayDeps, ids?: readonly string[]): Promise<string[]> {
  const notes = ids === undefined ? await deps.connections.withPendingEvents(100) : undefined;
  const pending = ids ?? notes!.map((note) => note._id);
  const busy: string[] = [];
  let published = 0;
  for (const _id of pending) {
    const lease = await deps.leases.tryAcquire(connectionLeaseKey(_id), 10_000);
    if (lease === null) {
      busy.push(_id); // the next pass gets it
      continue;
    }
    try {
      const connection = await deps.connections.findByIdUnscoped(_id);
      if (connection === null || connection.pending_events.length === 0) {
        // A note without events: its change was never written, or was relayed and the note not
        // yet dropped. A missing connection may still be being inserted (create() notes first,
        // without a lease), so its note is dropped only once it is older than any insert takes.
        const note = notes?.find((candidate) => candidate._id === _id);
        if (connection !== null || (note !== undefined && Date.now() - note.create_time.getTime() > NOTE_GRACE_MS)) {
          await deps.connections.relayed(_id);
        }
        continue;
      }
      const organisation = await deps.organisations.findById(connection.organisation_id);
      const now = new Date();
      for (const event of connection.pending_events) {
        await deps.events.publish({
          _id: event._id,
          type: event.type,
          organisation_id: connection.organisation_id,
          connection_id: connection._id,
          connector_id: connection.connector_id,
          credential_id: connection.credential_id,
          ...(event.status !== undefined && event.status !== "DELETED" ? { status: event.status } : {}),
          ...(event.status_reason !== undefined ? { status_reason: event.status_reason } : {}),
          create_time: event.create_time,
          publish_time: now,
          delivery: organisation?.webhook_url ? "pending" : "no_webhook",
          attempts: 0,
          next_attempt_time: now,
        });
        published++;
      }
      await deps.connections.clearPendingEvents(
        _id,
        connection.pending_events,
        connection.pending_events.map((event) => event._id),
      );
      if (connection.status === "DELETED") await deps.connections.purge(_id);
      await deps.connections.relayed(_id);
    } finally {
      await deps.leases.release(lease);
    }
  }
  if (published > 0) {
    deps.logger.debug({ published }, "published connection events");
    deps.onPublished();
  }
  return busy;
}

/** How often the relay scans for events other (crashed) instances left behind. */
const RECOVERY_SCAN_MS = 30_000;

/**
 * The relay as a background job. Connections this instance changed are relayed at once, by ID
 * (`noteChanged`); a scan of the outbox notes for anything pending (other instances' crashes)
 * runs every RECOVERY_SCAN_MS. The first scan also notes events written before the notes existed
 * (a scan of `connections`, once).
 */
export class OutboxRelayJob {
  readonly worker: Worker;
  readonly #changed = new Set<string>();
  #lastScan = 0;

  constructor(deps: OutboxRelayDeps, intervalMs: number, idleIntervalMs: number) {
    const noteUnrelayedEvents = onceThenNever(
      () => deps.connections.noteUnrelayedEvents(),
      "noted connections with events to relay",
      deps.logger,
    );
    this.worker = new Worker(
      "outbox-relay",
      intervalMs,
      async () => {
        const scan = Date.now() - this.#lastScan >= RECOVERY_SCAN_MS;
        if (!scan && this.#changed.size === 0) return false;
        if (scan) {
          this.#lastScan = Date.now();
          await noteUnrelayedEvents();
        }
        const ids = [...this.#changed];
        this.#changed.clear();
        const busy = await relayOutbox(deps, scan ? undefined : ids);
        for (const id of busy) this.#changed.add(id);
        return busy.length > 0;
      },
      deps.logger,
      idleIntervalMs,
    );
  }

  /** A connection this instance just wrote events into: relay it now. */
  noteChanged(connectionId: string): void {
    this.#changed.add(connectionId);
    this.worker.kick();
  }
}
