import type { Collection, Db } from "mongodb";
import { insertManyUnlessPresent, insertUnlessPresent } from "./database.js";
import type { EventDocument } from "./event-document.js";
import type { Read } from "./listing-reads.js";
import { claimSlot, headId, probeHead, type SeqMark } from "./slot-sequences.js";

/**
 * One event's entry in a stream: slot `<stream>/<seq>`, seq claimed by a unique insert (1, 2, 3…
 * per stream and window, in publish order). A stream is an organisation's events (`o:<id>`) or one
 * connection's (`c:<id>`, its timeline).
 */
interface EventSlotDocument {
  _id: string;
  event_id: string;
  /** When the slot was claimed: after the event's UUIDv7 was made, before the event is written. */
  claim_time: Date;
}

/** `<stream>/head` (a hint: readers probe past it), `<stream>/floor` (adopted slots go below 1), `~complete`. */
type EventIndexMarkDocument = SeqMark;

/** Slots read at once (separate `_id` finds sent together: FerretDB 1.24 pushes down only an exact `_id`). */
const BATCH = 32;
/**
 * A slot is claimed within this long of the claims before it (instances' clocks agree to within
 * it): a listing reads on until slots claimed this much before its page's oldest event, so an
 * event published slowly by one instance still comes out in ID order.
 */
const CLAIM_SKEW_MS = 5_000;
/** Marks an index window whose events window has every event's slots (see `adopt`). */
const COMPLETE_ID = "~complete";

/** The stream of an organisation's events, and of one connection's. */
export const organisationStream = (organisationId: string) => `o:${organisationId}`;
export const connectionStream = (connectionId: string) => `c:${connectionId}`;

/**
 * The only module that reads or writes `event_index` and its windows: each organisation's and
 * each connection's events, reachable by exact `_id` lookups, so that ListConnectionEvents costs
 * what the organisation (or the connection) holds, not what the history holds (on FerretDB 1.24
 * any other filter reads and decodes every event). The same design as ConnectionDirectory, on
 * MongoDB as on FerretDB. The index is windowed with the history: `event_index` is renamed
 * `event_index_until_<end>` with `events` and dropped with it, so retention stays whole-collection.
 */
export class EventIndex {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /** The index window beside an events window (`events` → `event_index`, `events_until_x` → `event_index_until_x`). */
  window(eventsName: string): Collection<EventSlotDocument> {
    return this.#db.collection<EventSlotDocument>(eventsName.replace(/^events/, "event_index"));
  }

  /** Claims the event's slots in its organisation's and its connection's streams (before the event is written). */
  async add(event: EventDocument): Promise<void> {
    const index = this.window("events");
    await Promise.all([organisationStream(event.organisation_id), connectionStream(event.connection_id)].map((stream) => claim(index, stream, event._id)));
  }

  /** Whether every event of the events window has its slots (else its listings read the events window itself). */
  async complete(eventsName: string): Promise<boolean> {
    return (await marks(this.window(eventsName)).findOne({ _id: COMPLETE_ID }, { projection: { _id: 1 } })) !== null;
  }

  /** A new, empty window is complete: every event published into it claims its slots. */
  async markComplete(eventsName: string): Promise<void> {
    await insertUnlessPresent(marks(this.window(eventsName)), { _id: COMPLETE_ID, seq: 0 });
  }

  /**
   * Gives the events already in a window (from before the index) slots 0, -1, … below every other
   * slot of their streams, newest first, then marks the window complete. Events published
   * meanwhile may end up with two slots: readers show an event once. A scan of the window: run at
   * start-up only.
   */
  async adopt(eventsName: string, history: Collection<EventDocument>): Promise<number> {
    const index = this.window(eventsName);
    const streams = new Map<string, string[]>();
    for await (const event of history.find({}, { projection: { organisation_id: 1, connection_id: 1 } }).sort({ _id: -1 })) {
      for (const stream of [organisationStream(event.organisation_id), connectionStream(event.connection_id)]) {
        const ids = streams.get(stream) ?? [];
        ids.push(event._id);
        streams.set(stream, ids);
      }
    }
    // Floors first (a crash leaves readers at worst slots to skip), then the slots, in bulk. Slots
    // are claimed "when made": adopted slots run newest first, so a listing stops in them as above.
    const floors = [...streams].map(([stream, ids]) => ({ _id: `${stream}/floor`, seq: 1 - ids.length }));
    const slots = [...streams].flatMap(([stream, ids]) =>
      ids.map((event_id, i) => ({ _id: `${stream}/${-i}`, event_id, claim_time: new Date(uuidv7Time(event_id)) })),
    );
    for (let i = 0; i < floors.length; i += 1_000) await insertManyUnlessPresent(marks(index), floors.slice(i, i + 1_000));
    for (let i = 0; i < slots.length; i += 1_000) await insertManyUnlessPresent(index, slots.slice(i, i + 1_000));
    await this.markComplete(eventsName);
    return streams.size;
  }

  /**
   * The stream's events in one window, newest ID first, strictly older than `beforeId` when given,
   * that `keep` accepts, until `want` are found (or the slots end). `fetch` reads events by ID;
   * `read` runs each find of the index (where listings wait their turn).
   */
  async newestFirst(
    eventsName: string,
    stream: string,
    beforeId: string | undefined,
    want: number,
    fetch: (ids: string[]) => Promise<EventDocument[]>,
    keep: (event: EventDocument) => boolean,
    read: Read,
  ): Promise<EventDocument[]> {
    const index = this.window(eventsName);
    const found = new Map<string, EventDocument>();
    const newestFirst = () => [...found.values()].sort((a, b) => (a._id < b._id ? 1 : a._id > b._id ? -1 : 0));
    const [head, floor] = await Promise.all([headOf(index, stream, read), floorOf(index, stream, read)]);
    for (let next = head; next >= floor; next -= BATCH) {
      const seqs = Array.from({ length: Math.min(BATCH, next - floor + 1) }, (_, i) => next - i);
      const slots = (await Promise.all(seqs.map((seq) => read(() => index.findOne({ _id: `${stream}/${seq}` }))))).filter((slot) => slot !== null);
      const ids = [...new Set(slots.map((slot) => slot.event_id))].filter((id) => !found.has(id) && (beforeId === undefined || id < beforeId));
      for (const event of await fetch(ids)) if (keep(event)) found.set(event._id, event);
      if (found.size < want || slots.length === 0) continue;
      // Enough: unless a slot below, claimed a little earlier, holds a newer ID (see CLAIM_SKEW_MS).
      const oldestShown = uuidv7Time(newestFirst()[want - 1]!._id);
      const earliestClaim = Math.min(...slots.map((slot) => slot.claim_time.getTime()));
      if (earliestClaim < oldestShown - CLAIM_SKEW_MS) break;
    }
    return newestFirst().slice(0, want);
  }
}

function marks(index: Collection<EventSlotDocument>): Collection<EventIndexMarkDocument> {
  return index as unknown as Collection<EventIndexMarkDocument>;
}

/** Claims the stream's next free slot past its head hint for the event. */
async function claim(index: Collection<EventSlotDocument>, stream: string, eventId: string): Promise<void> {
  const hint = (await marks(index).findOne({ _id: headId(stream) }))?.seq ?? 0;
  await claimSlot(index, stream, hint, (_id) => ({ _id, event_id: eventId, claim_time: new Date() }));
}

/** The stream's newest claimed seq (0: none): the hint, probed forward (racing writers may leave it behind). */
async function headOf(index: Collection<EventSlotDocument>, stream: string, read: Read): Promise<number> {
  const hint = (await read(() => marks(index).findOne({ _id: headId(stream) })))?.seq ?? 0;
  return probeHead(stream, hint, 4, (_id) => read(() => index.findOne({ _id }, { projection: { _id: 1 } })));
}

/** The lowest slot: 1, or below when events from before the index were adopted. */
async function floorOf(index: Collection<EventSlotDocument>, stream: string, read: Read): Promise<number> {
  return Math.min(1, (await read(() => marks(index).findOne({ _id: `${stream}/floor` })))?.seq ?? 1);
}


/** The milliseconds a UUIDv7 carries (its first 48 bits). */
function uuidv7Time(id: string): number {
  return parseInt(id.replaceAll("-", "").slice(0, 12), 16);
}
