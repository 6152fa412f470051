import { randomUUID } from "node:crypto";
import type { Collection, Db } from "mongodb";
import { insertManyUnlessPresent, insertUnlessPresent, isDuplicateKey } from "./database.js";
import type { ConnectionStatus } from "./connection-status.js";
import { DEFAULT_LISTING_READS, ListingReads, type Read } from "./listing-reads.js";
import { claimSlot, headId, moveMark, probeHead, type SeqMark } from "./slot-sequences.js";

/**
 * One connection's entry in its organisation's directory: slot `<organisation>/<seq>`, seq
 * claimed by a unique insert (1, 2, 3… per organisation, in creation order), with a mirror of the
 * fields listings filter and counts group on. `status` is "DELETED" once the connection is
 * deleted or gone.
 */
export interface DirectorySlotDocument {
  _id: string;
  connection_id: string;
  connector_id: string;
  credential_id: string;
  status: ConnectionStatus;
  /** When the slot was claimed: right after the connection's UUIDv7 was made. */
  claim_time: Date;
}

/**
 * The directory's other documents: `<organisation>/head`, where its newest slot was at least when
 * last written (a hint: readers probe past it); `<organisation>/floor`, its lowest slot (slots
 * 0, -1, … hold connections from before the directory, newest first); `~c/<connection>`, the slot
 * of such a connection (new ones carry `directory_seq`); `~complete`, left by a clean reconcile;
 * `<organisation>/changed`, a new random `tag` after every change to a slot's status or to the
 * floor (a new slot changes no tag: counts find it past the head they kept).
 */
interface DirectoryMarkDocument extends SeqMark {
  tag?: string;
}

/** How many of an organisation's connections have one status and credential (DELETED ones left out). */
export interface TallyGroup {
  status: ConnectionStatus;
  credential_id: string;
  count: number;
}

/**
 * A tally this instance made of the slots up to `head`, valid while its organisation's `changed`
 * tag is still `tag` (undefined: no change was ever marked).
 */
interface KeptTally {
  tag: string | undefined;
  head: number;
  groups: TallyGroup[];
}

/** Tallies (and floors) kept per instance: the organisations counted (or listed) most recently. */
const KEPT_TALLIES = 1_000;
/** How long a floor read is used for (see `#floor`). */
const FLOOR_KEPT_MS = 1_000;

/** What a listing filters on (undefined: any). */
export interface DirectoryFilter {
  status?: ConnectionStatus;
  connectorId?: string;
  credentialId?: string;
}

/** Slots read at once (separate `_id` finds sent together: FerretDB 1.24 pushes down only an exact `_id`). */
const BATCH = 32;
/**
 * Past this many slots a count reads the organisation's slots as one `_id` range instead of one
 * find each: on MongoDB an index range of the organisation's own; on FerretDB 1.24, which does not
 * push ranges down, one read of the whole directory, cheaper by then than that many finds.
 */
const TALLY_RANGE_ABOVE = 4_096;
/** The low mark moves once this many DELETED slots lie at the bottom (fewer writes for small gains). */
const LOW_STEP = 8;
/** Slots probed at once past the head hint (it is usually exact: the first probe finds nothing). */
const HEAD_PROBES = 2;
/** The fewest slots a listing reads at once, when its page needs only a few more. */
const MIN_READ = 8;

/**
 * The only module that reads or writes `connection_directory`: each organisation's connections,
 * reachable by exact `_id` lookups, so that listing and counting them costs what the organisation
 * holds, not what the collection holds (on FerretDB 1.24 any other filter reads and decodes every
 * document of the collection; on MongoDB these are point reads). One collection for every
 * organisation, on MongoDB as on FerretDB: a collection per organisation does not scale on MongoDB
 * and would turn every cross-organisation job into a fan-out.
 *
 * Exact under racing writers without `$inc` (FerretDB's updates are a read then a write): a slot
 * is claimed by a unique insert, and after that only the holder of its connection's lease writes
 * its mirror, so a count is the sum of slots each written by one writer at a time.
 */
export class ConnectionDirectory {
  readonly collection: Collection<DirectorySlotDocument>;
  readonly #marks: Collection<DirectoryMarkDocument>;
  /** The newest slot this instance has seen per organisation: where claims and probes start. */
  readonly #seen = new Map<string, number>();
  #complete = false;
  /** Tallies by organisation, oldest first (see `tally`). */
  readonly #tallies = new Map<string, KeptTally>();
  /** Floors by organisation, oldest first, with when each was read (see `#floor`). */
  readonly #floors = new Map<string, { floor: number; at: number }>();
  /** Where listings' and counts' finds wait their turn (claims and mirrors, on hot paths, do not). */
  readonly reads: ListingReads;

  constructor(db: Db, reads = new ListingReads(DEFAULT_LISTING_READS)) {
    this.collection = db.collection<DirectorySlotDocument>("connection_directory");
    this.#marks = this.collection as unknown as Collection<DirectoryMarkDocument>;
    this.reads = reads;
  }

  /**
   * Claims the organisation's next slot for a connection about to be inserted: the first free
   * seq past the newest known, by unique insert (a racing claimer takes another). Returns the seq.
   */
  async claim(organisationId: string, slot: Omit<DirectorySlotDocument, "_id" | "claim_time">): Promise<number> {
    // No new `changed` tag: a kept tally reads the slots past its head (see `tally`).
    const seq = await claimSlot(this.collection, organisationId, await this.#knownHead(organisationId), (_id) => ({ ...slot, _id, claim_time: new Date() }));
    this.#see(organisationId, seq);
    return seq;
  }

  /**
   * Gives connections from before the directory (newest first) the slots `from`, `from - 1`, …
   * below every other slot of the organisation, and notes each one's slot. A slot or note another
   * instance took first is left to it (the next reconcile sorts it out). The floor moves first,
   * so a crash leaves readers at worst a few missing slots to skip.
   */
  async adopt(organisationId: string, from: number, connections: ReadonlyArray<Omit<DirectorySlotDocument, "_id" | "claim_time">>): Promise<void> {
    if (connections.length === 0) return;
    await moveMark(this.#marks, floorId(organisationId), { $min: { seq: from - connections.length + 1 } });
    const now = new Date();
    await insertManyUnlessPresent<DirectorySlotDocument>(this.collection, connections.map((slot, i) => ({ ...slot, _id: slotId(organisationId, from - i), claim_time: now })));
    await insertManyUnlessPresent(this.#marks, connections.map((slot, i) => ({ _id: ownerId(slot.connection_id), seq: from - i })));
    await this.#changed(organisationId);
  }

  /** Notes an adopted connection's slot (a reconcile cut short between the slot and its note). */
  async own(connectionId: string, seq: number): Promise<void> {
    await insertUnlessPresent(this.#marks, { _id: ownerId(connectionId), seq });
  }

  /** The connection's slot: its `directory_seq`, or for one from before the directory, its note. */
  async seqOf(connection: { _id: string; directory_seq?: number }): Promise<number | undefined> {
    return connection.directory_seq ?? (await this.#marks.findOne({ _id: ownerId(connection._id) }))?.seq;
  }

  /** Writes a connection's mirrored status. Call it holding the connection's lease. */
  async mirror(organisationId: string, seq: number, status: ConnectionStatus): Promise<void> {
    await this.collection.updateOne({ _id: slotId(organisationId, seq) }, { $set: { status } });
    await this.#changed(organisationId);
  }

  /** The slot, as stored (null when there is no such slot). */
  async slot(organisationId: string, seq: number): Promise<DirectorySlotDocument | null> {
    return this.collection.findOne({ _id: slotId(organisationId, seq) });
  }

  /**
   * The organisation's slots matching `filter` (DELETED never matches), newest slot first (the
   * order the connections were made in), strictly below slot `belowSeq` when given. Each is passed
   * to `accept`, which reads its connection and returns it while it is still one to show (else
   * null), until `want` were accepted or the slots end. No slot is read past the last one the page
   * needs, so a page costs what it shows (and the slots its filter passes over), however many
   * connections the organisation holds or how fast it made them.
   */
  async newestFirst<T>(
    organisationId: string,
    filter: DirectoryFilter,
    belowSeq: number | undefined,
    want: number,
    accept: (slot: DirectorySlotDocument) => Promise<T | null>,
  ): Promise<Array<{ seq: number; item: T }>> {
    const found: Array<{ seq: number; item: T }> = [];
    const [head, floor] = await Promise.all([this.head(organisationId), this.#floor(organisationId)]);
    let next = belowSeq === undefined ? head : Math.min(head, belowSeq - 1);
    while (found.length < want && next >= floor) {
      const count = Math.min(BATCH, Math.max(want - found.length, MIN_READ), next - floor + 1);
      const slots = await this.#readDown(organisationId, next, count, floor);
      next -= count;
      const matching = slots.filter((slot) => matches(slot, filter));
      const needed = matching.slice(0, want - found.length);
      // The page fills within this batch: the next one starts right after its last slot.
      if (needed.length < matching.length) next = seqOf(needed.at(-1)!) - 1;
      const accepted = await Promise.all(needed.map(accept));
      for (const [i, item] of accepted.entries()) if (item !== null) found.push({ seq: seqOf(needed[i]!), item });
    }
    return found;
  }

  /**
   * How many of the organisation's connections have each status and credential (DELETED ones
   * left out): as small as the organisation's credentials, however many connections it holds.
   * Moves the organisation's low mark past the run of DELETED slots it finds at the bottom, so
   * that reads stop growing with connections long deleted.
   */
  async tally(organisationId: string): Promise<TallyGroup[]> {
    // Read before the slots: a change after this read gives a new tag, so the tally kept below
    // is never used past a change it did not see. Connections made since (new slots past the
    // kept head) change no tag: their slots alone are read and added.
    const tag = (await this.reads.run(organisationId, () => this.#marks.findOne({ _id: changedId(organisationId) })))?.tag;
    const kept = this.#tallies.get(organisationId);
    let tally: { head: number; groups: TallyGroup[] };
    if (kept !== undefined && kept.tag === tag) {
      const head = await this.head(organisationId);
      if (head === kept.head) return kept.groups;
      const made: DirectorySlotDocument[] = [];
      for (let next = head; next > kept.head; next -= BATCH) made.push(...(await this.#readDown(organisationId, next, Math.min(BATCH, next - kept.head), kept.head + 1)));
      tally = { head, groups: groupByStatusAndCredential(made, kept.groups) };
    } else {
      const { head, live } = await this.#tallyNow(organisationId);
      tally = { head, groups: groupByStatusAndCredential(live) };
    }
    keepRecent(this.#tallies, organisationId, { tag, ...tally });
    return tally.groups;
  }

  /** Every slot's status and credential up to the head (DELETED ones left out), and that head. */
  async #tallyNow(organisationId: string): Promise<{ head: number; live: Array<Pick<DirectorySlotDocument, "status" | "credential_id">> }> {
    const live: Array<Pick<DirectorySlotDocument, "status" | "credential_id">> = [];
    const [head, floor] = await Promise.all([this.head(organisationId), this.#floor(organisationId, true)]);
    if (head - floor + 1 > TALLY_RANGE_ABOVE) {
      // One range read of the organisation's slots (`/` sorts just before `0`; no organisation ID
      // has a `/`), up to the head: slots claimed meanwhile are the next tally's.
      const range = { _id: { $gte: `${organisationId}/`, $lt: `${organisationId}0` }, claim_time: { $exists: true } };
      const slots = await this.reads.run(organisationId, () => this.collection.find(range, { projection: { status: 1, credential_id: 1 } }).toArray());
      for (const slot of slots) if (slot.status !== "DELETED" && seqOf(slot) <= head) live.push({ status: slot.status, credential_id: slot.credential_id });
      return { head, live };
    }
    const read: DirectorySlotDocument[] = [];
    for (let next = head; next >= floor; next -= BATCH) read.push(...(await this.#readDown(organisationId, next, BATCH, floor)));
    for (const slot of read) if (slot.status !== "DELETED") live.push({ status: slot.status, credential_id: slot.credential_id });
    await this.#raiseLow(organisationId, floor, head, read);
    return { head, live };
  }

  /**
   * Moves the low mark to the first slot above `floor` that is missing or not DELETED (all of
   * them DELETED: past `head`). DELETED is final (a mended connection takes a new slot), and a
   * racing writer's lost update only leaves the mark lower, so counts stay exact.
   */
  async #raiseLow(organisationId: string, floor: number, head: number, read: DirectorySlotDocument[]): Promise<void> {
    const deleted = new Set(read.filter((slot) => slot.status === "DELETED").map(seqOf));
    let low = floor;
    while (low <= head && deleted.has(low)) low++;
    if (low - floor >= LOW_STEP) await moveMark(this.#marks, lowId(organisationId), { $max: { seq: low } });
  }

  /** The organisation's newest claimed seq (0: none): from the hint or what this instance saw, probed forward. */
  async head(organisationId: string): Promise<number> {
    const read = this.reads.of(organisationId);
    const hint = await this.#knownHead(organisationId, read);
    const head = await probeHead(organisationId, hint, HEAD_PROBES, (_id) => read(() => this.collection.findOne({ _id }, { projection: { _id: 1 } })));
    this.#see(organisationId, head);
    return head;
  }

  /**
   * Whether a clean reconcile has run since the directory existed (until then listings read
   * `connections` as before). Once seen, remembered.
   */
  async complete(): Promise<boolean> {
    if (this.#complete) return true;
    this.#complete = (await this.#marks.findOne({ _id: COMPLETE_ID }, { projection: { _id: 1 } })) !== null;
    return this.#complete;
  }

  /**
   * A reconcile found every connection with its slot and mirror: listings may use the directory.
   * With no connection at all there is nothing to remember (every one made from now on has its
   * slot), so the database is left as it is.
   */
  async markComplete(sawConnections: boolean): Promise<void> {
    if (sawConnections) await insertUnlessPresent(this.#marks, { _id: COMPLETE_ID, seq: 0 });
    this.#complete = true;
  }

  /** The whole directory, for the start-up reconcile (a scan of this collection: never per request). */
  async snapshot(): Promise<{ slots: DirectorySlotDocument[]; owners: Map<string, number> }> {
    const slots: DirectorySlotDocument[] = [];
    const owners = new Map<string, number>();
    for await (const document of this.collection.find({})) {
      if (document._id.startsWith(OWNER_PREFIX)) owners.set(document._id.slice(OWNER_PREFIX.length), (document as unknown as DirectoryMarkDocument).seq);
      else if (document.claim_time !== undefined) slots.push(document);
    }
    return { slots, owners };
  }

  /** The slots `from`, `from - 1`, … (`count` of them, not below `floor`), newest first; missing ones skipped. */
  async #readDown(organisationId: string, from: number, count: number, floor: number): Promise<DirectorySlotDocument[]> {
    const seqs = Array.from({ length: Math.min(count, from - floor + 1) }, (_, i) => from - i).filter((seq) => seq !== 0 || floor <= 0);
    const slots = await Promise.all(seqs.map((seq) => this.reads.run(organisationId, () => this.collection.findOne({ _id: slotId(organisationId, seq) }))));
    return slots.filter((slot): slot is DirectorySlotDocument => slot !== null);
  }

  async #knownHead(organisationId: string, read: Read = (find) => find()): Promise<number> {
    const hint = await read(() => this.#marks.findOne({ _id: headId(organisationId) }));
    return Math.max(hint?.seq ?? 0, this.#seen.get(organisationId) ?? 0);
  }

  /**
   * The lowest slot to read: 1, or below 1 when connections from before the directory were
   * adopted; or the low mark, when the slots below it are all DELETED. Read at most once a
   * FLOOR_KEPT_MS per organisation: the low mark only rises (a stale one reads a few more slots),
   * and slots below 1 are only added by a start-up reconcile's adoption. `fresh`: read it now
   * (a tally, which is kept, must not miss an adoption).
   */
  async #floor(organisationId: string, fresh = false): Promise<number> {
    const kept = this.#floors.get(organisationId);
    if (!fresh && kept !== undefined && performance.now() - kept.at < FLOOR_KEPT_MS) return kept.floor;
    const [floorMark, low] = await Promise.all(
      [floorId(organisationId), lowId(organisationId)].map((id) => this.reads.run(organisationId, () => this.#marks.findOne({ _id: id }))),
    );
    const floor = Math.max(Math.min(1, floorMark?.seq ?? 1), low?.seq ?? Number.NEGATIVE_INFINITY);
    keepRecent(this.#floors, organisationId, { floor, at: performance.now() });
    return floor;
  }

  #see(organisationId: string, seq: number): void {
    if (seq > (this.#seen.get(organisationId) ?? 0)) this.#seen.set(organisationId, seq);
  }

  /**
   * Gives the organisation's `changed` mark a new tag, after a change to its slots. A new random
   * value rather than a counter: racing writers on FerretDB (a read then a write) may overwrite
   * each other's tag, but never leave it at one a tally was kept under.
   */
  async #changed(organisationId: string): Promise<void> {
    const change = { $set: { tag: randomUUID() }, $setOnInsert: { seq: 0 } };
    try {
      await this.#marks.updateOne({ _id: changedId(organisationId) }, change, { upsert: true });
    } catch (error) {
      // Two first writers upserted at once: the other's tag may predate this change, so write again.
      if (!isDuplicateKey(error)) throw error;
      await this.#marks.updateOne({ _id: changedId(organisationId) }, change);
    }
  }

}

/** The marker a clean reconcile leaves, and the prefix of adopted connections' notes (`~` is in no organisation ID). */
const COMPLETE_ID = "~complete";
const OWNER_PREFIX = "~c/";

function ownerId(connectionId: string): string {
  return `${OWNER_PREFIX}${connectionId}`;
}

/** `<organisation>/low`: every slot below it is DELETED (readers start there). */
function lowId(organisationId: string): string {
  return `${organisationId}/low`;
}

function changedId(organisationId: string): string {
  return `${organisationId}/changed`;
}

function floorId(organisationId: string): string {
  return `${organisationId}/floor`;
}

/** The organisation a slot belongs to. */
export function organisationOf(slot: DirectorySlotDocument): string {
  return slot._id.slice(0, slot._id.lastIndexOf("/"));
}

/** The seq a slot was claimed as. */
export function seqOf(slot: DirectorySlotDocument): number {
  return Number(slot._id.slice(slot._id.lastIndexOf("/") + 1));
}

function slotId(organisationId: string, seq: number): string {
  return `${organisationId}/${seq}`;
}

/** Keeps `value` as the newest entry of `kept`, dropping the oldest past KEPT_TALLIES (a Map iterates oldest first). */
function keepRecent<V>(kept: Map<string, V>, key: string, value: V): void {
  kept.delete(key);
  kept.set(key, value);
  if (kept.size > KEPT_TALLIES) kept.delete(kept.keys().next().value!);
}

/** `groups` (not changed) with the slots' connections added (DELETED ones left out). */
function groupByStatusAndCredential(slots: ReadonlyArray<Pick<DirectorySlotDocument, "status" | "credential_id">>, groups: readonly TallyGroup[] = []): TallyGroup[] {
  const byKey = new Map(groups.map((group) => [JSON.stringify([group.status, group.credential_id]), { ...group }]));
  for (const { status, credential_id } of slots) {
    if (status === "DELETED") continue;
    const key = JSON.stringify([status, credential_id]);
    const group = byKey.get(key);
    if (group === undefined) byKey.set(key, { status, credential_id, count: 1 });
    else group.count++;
  }
  return [...byKey.values()];
}

function matches(slot: DirectorySlotDocument, filter: DirectoryFilter): boolean {
  if (slot.status === "DELETED") return false;
  if (filter.status !== undefined && slot.status !== filter.status) return false;
  if (filter.connectorId !== undefined && slot.connector_id !== filter.connectorId) return false;
  return filter.credentialId === undefined || slot.credential_id === filter.credentialId;
}

