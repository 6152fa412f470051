import type { Collection, Db } from "mongodb";
import { insertUnlessPresent, isDuplicateKey } from "./database.js";
import type { ConnectionStatus } from "./connections.js";

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
  /** When the slot was claimed: right after the connection's UUIDv7 was made (see `newestFirst`). */
  claim_time: Date;
}

/** Where an organisation's newest slot was, at least, when last written (a hint: readers probe past it). */
interface DirectoryHeadDocument {
  _id: string;
  seq: number;
}

/** What a listing filters on (undefined: any). */
export interface DirectoryFilter {
  status?: ConnectionStatus;
  connectorId?: string;
  credentialId?: string;
}

/** Slots read at once (separate `_id` finds sent together: FerretDB 1.24 pushes down only an exact `_id`). */
const BATCH = 32;
/**
 * A slot is claimed at most this long after its connection's ID was made (the same call, before
 * the connection is written), and instances' clocks agree to within it: a listing that has its
 * page reads on until slots claimed this long before the page's oldest connection, so connections
 * made at the same moment on two instances come out in ID order.
 */
const CLAIM_SKEW_MS = 5_000;

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
  readonly #heads: Collection<DirectoryHeadDocument>;
  /** The newest slot this instance has seen per organisation: where claims and probes start. */
  readonly #seen = new Map<string, number>();
  #complete = false;

  constructor(db: Db) {
    this.collection = db.collection<DirectorySlotDocument>("connection_directory");
    this.#heads = this.collection as unknown as Collection<DirectoryHeadDocument>;
  }

  /**
   * Claims the organisation's next slot for a connection about to be inserted: the first free
   * seq past the newest known, by unique insert (a racing claimer takes another). Returns the seq.
   * A connection from before the directory is given its creation time as `claimTime`.
   */
  async claim(organisationId: string, slot: Omit<DirectorySlotDocument, "_id" | "claim_time">, claimTime = new Date()): Promise<number> {
    let seq = (await this.#knownHead(organisationId)) + 1;
    while (!(await insertUnlessPresent(this.collection, { ...slot, _id: slotId(organisationId, seq), claim_time: claimTime }))) seq++;
    this.#see(organisationId, seq);
    await this.#writeHead(organisationId, seq);
    return seq;
  }

  /** Writes a connection's mirrored status. Call it holding the connection's lease. */
  async mirror(organisationId: string, seq: number, status: ConnectionStatus): Promise<void> {
    await this.collection.updateOne({ _id: slotId(organisationId, seq) }, { $set: { status } });
  }

  /** The slot's mirror, as stored (null when there is no such slot). */
  async slot(organisationId: string, seq: number): Promise<DirectorySlotDocument | null> {
    return this.collection.findOne({ _id: slotId(organisationId, seq) });
  }

  /**
   * The organisation's slots matching `filter` (DELETED never matches), newest connection ID
   * first, strictly older than `beforeId` when given, until `want` were passed to `accept` and
   * accepted (it reads the connection and says whether it is still one to show), or the slots end.
   */
  async newestFirst<T>(
    organisationId: string,
    filter: DirectoryFilter,
    beforeId: string | undefined,
    want: number,
    accept: (slots: DirectorySlotDocument[]) => Promise<T[]>,
    idOf: (item: T) => string,
  ): Promise<T[]> {
    const found: T[] = [];
    let next = await this.head(organisationId);
    while (next > 0) {
      const slots = await this.#readDown(organisationId, next, BATCH);
      next -= BATCH;
      const matching = slots.filter((slot) => matches(slot, filter) && (beforeId === undefined || slot.connection_id < beforeId));
      found.push(...(await accept(matching)));
      if (found.length < want) continue;
      // Enough: unless a slot claimed close to the page's oldest might still hold a newer ID.
      found.sort((a, b) => (idOf(a) < idOf(b) ? 1 : idOf(a) > idOf(b) ? -1 : 0));
      const oldestShown = uuidv7Time(idOf(found[want - 1]!));
      const oldestRead = slots.at(-1)?.claim_time.getTime() ?? 0;
      if (oldestRead < oldestShown - CLAIM_SKEW_MS) break;
    }
    found.sort((a, b) => (idOf(a) < idOf(b) ? 1 : idOf(a) > idOf(b) ? -1 : 0));
    return found.slice(0, want);
  }

  /** How many of the organisation's connections have each status (DELETED ones left out), with their credentials. */
  async tally(organisationId: string): Promise<Array<Pick<DirectorySlotDocument, "status" | "credential_id">>> {
    const live: Array<Pick<DirectorySlotDocument, "status" | "credential_id">> = [];
    for (let next = await this.head(organisationId); next > 0; next -= BATCH) {
      for (const slot of await this.#readDown(organisationId, next, BATCH)) {
        if (slot.status !== "DELETED") live.push({ status: slot.status, credential_id: slot.credential_id });
      }
    }
    return live;
  }

  /** The organisation's newest claimed seq (0: none): from the hint or what this instance saw, probed forward. */
  async head(organisationId: string): Promise<number> {
    let head = await this.#knownHead(organisationId);
    for (;;) {
      const probes = await Promise.all(
        Array.from({ length: 4 }, (_, i) => this.collection.findOne({ _id: slotId(organisationId, head + 1 + i) }, { projection: { _id: 1 } })),
      );
      const missing = probes.findIndex((probe) => probe === null);
      if (missing === -1) {
        head += probes.length;
        continue;
      }
      head += missing;
      break;
    }
    this.#see(organisationId, head);
    return head;
  }

  /**
   * Whether every connection has had its slot since a start-up reconcile finished (until then
   * listings read `connections` as before the directory existed). Once seen, remembered.
   */
  async complete(): Promise<boolean> {
    if (this.#complete) return true;
    this.#complete = (await this.collection.findOne({ _id: COMPLETE_ID }, { projection: { _id: 1 } })) !== null;
    return this.#complete;
  }

  /** A reconcile found every connection with its slot and mirror: listings may use the directory. */
  async markComplete(): Promise<void> {
    await this.#heads.updateOne({ _id: COMPLETE_ID }, { $set: { seq: 0 } }, { upsert: true }).catch((error: unknown) => {
      if (!isDuplicateKey(error)) throw error;
    });
    this.#complete = true;
  }

  /** Every slot, for the start-up reconcile (a scan of this collection: never per request). */
  async *everySlot(): AsyncGenerator<DirectorySlotDocument> {
    yield* this.collection.find({ claim_time: { $exists: true } });
  }

  /** Slots `from`, `from - 1`, … (at most `count`, down to 1), newest first; missing ones skipped. */
  async #readDown(organisationId: string, from: number, count: number): Promise<DirectorySlotDocument[]> {
    const seqs = Array.from({ length: Math.min(count, from) }, (_, i) => from - i);
    const slots = await Promise.all(seqs.map((seq) => this.collection.findOne({ _id: slotId(organisationId, seq) })));
    return slots.filter((slot): slot is DirectorySlotDocument => slot !== null);
  }

  async #knownHead(organisationId: string): Promise<number> {
    const hint = await this.#heads.findOne({ _id: headId(organisationId) });
    return Math.max(hint?.seq ?? 0, this.#seen.get(organisationId) ?? 0);
  }

  #see(organisationId: string, seq: number): void {
    if (seq > (this.#seen.get(organisationId) ?? 0)) this.#seen.set(organisationId, seq);
  }

  /** Moves the hint forward. Racing writers may leave it behind (a lost update): readers probe past it. */
  async #writeHead(organisationId: string, seq: number): Promise<void> {
    try {
      await this.#heads.updateOne({ _id: headId(organisationId) }, { $max: { seq } }, { upsert: true });
    } catch (error) {
      // Two first claims upserted at once: the other's hint is there.
      if (!isDuplicateKey(error)) throw error;
    }
  }
}

/** The marker a finished reconcile leaves (`~` is in no organisation ID). */
const COMPLETE_ID = "~complete";

function slotId(organisationId: string, seq: number): string {
  return `${organisationId}/${seq}`;
}

/** The organisation a slot belongs to. */
export function organisationOf(slot: DirectorySlotDocument): string {
  return slot._id.slice(0, slot._id.lastIndexOf("/"));
}

/** The seq a slot was claimed as. */
export function seqOf(slot: DirectorySlotDocument): number {
  return Number(slot._id.slice(slot._id.lastIndexOf("/") + 1));
}

function headId(organisationId: string): string {
  return `${organisationId}/head`;
}

function matches(slot: DirectorySlotDocument, filter: DirectoryFilter): boolean {
  if (slot.status === "DELETED") return false;
  if (filter.status !== undefined && slot.status !== filter.status) return false;
  if (filter.connectorId !== undefined && slot.connector_id !== filter.connectorId) return false;
  return filter.credentialId === undefined || slot.credential_id === filter.credentialId;
}

/** The milliseconds a UUIDv7 carries (its first 48 bits); 0 for another kind of ID. */
function uuidv7Time(id: string): number {
  const hex = id.replaceAll("-", "").slice(0, 12);
  return /^[0-9a-f]{12}$/.test(hex) ? parseInt(hex, 16) : 0;
}
