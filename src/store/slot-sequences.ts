import type { Collection, Document, OptionalUnlessRequiredId } from "mongodb";
import { insertUnlessPresent, isDuplicateKey } from "./database.js";

/**
 * Sequences of slots, `<stream>/1`, `<stream>/2`, … one per thing a stream holds, each seq
 * claimed by a unique insert, with a `<stream>/head` hint of the newest. Exact under racing
 * claimers on FerretDB, whose updates are a read then a write: only inserts decide who holds a
 * seq; the hint only says where readers start probing. Claims start past a head no later than
 * the true one, so the seqs have no gaps. What the connection directory and the event index share.
 */

/** A hint or bound on a stream's seqs (`<stream>/head`, `/floor`, `/low`). */
export interface SeqMark {
  _id: string;
  seq: number;
}

export function headId(stream: string): string {
  return `${stream}/head`;
}

/** Claims the first free seq past `after` (at most the newest claimed) for the slot `slotFor` makes, then moves the head hint. */
export async function claimSlot<T extends Document>(
  slots: Collection<T>,
  stream: string,
  after: number,
  slotFor: (id: string) => OptionalUnlessRequiredId<T>,
): Promise<number> {
  let seq = after + 1;
  while (!(await insertUnlessPresent(slots, slotFor(`${stream}/${seq}`)))) seq++;
  await moveMark(slots as unknown as Collection<SeqMark>, headId(stream), { $max: { seq } });
  return seq;
}

/**
 * The stream's newest claimed seq, from `from` (the hint, or anything below the true head),
 * probing `width` slots at a time until one is missing. `find` reads a slot by `_id` (null: none).
 */
export async function probeHead(stream: string, from: number, width: number, find: (id: string) => Promise<unknown>): Promise<number> {
  let head = from;
  for (;;) {
    const probes = await Promise.all(Array.from({ length: width }, (_, i) => find(`${stream}/${head + 1 + i}`)));
    const missing = probes.indexOf(null);
    if (missing !== -1) return head + missing;
    head += width;
  }
}

/** Moves a hint. Racing writers may leave it behind (a lost update): readers probe past the head. */
export async function moveMark(marks: Collection<SeqMark>, id: string, change: { $max: { seq: number } } | { $min: { seq: number } }): Promise<void> {
  try {
    await marks.updateOne({ _id: id }, change, { upsert: true });
  } catch (error) {
    // Two first writers upserted at once: the other's is there.
    if (!isDuplicateKey(error)) throw error;
  }
}
