import { describe, expect, it } from "vitest";
import { ListingReads } from "../../src/store/listing-reads.js";

// Issue 21: listings' finds wait their turn, at most `limit` in flight, organisations taking turns,
// so one organisation's listings neither flood the database nor hold up another's.

/** A read that starts when the lane lets it and finishes when `finish()` is called. */
function gatedRead(started: string[], name: string): { read: () => Promise<string>; finish: () => void } {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    read: async () => {
      started.push(name);
      await done;
      return name;
    },
    finish: () => finish(),
  };
}

describe("ListingReads", () => {
  it("keeps at most `limit` reads in flight, and gives the next place to organisations in turn, oldest read first", async () => {
    const lane = new ListingReads(2);
    const started: string[] = [];
    const big = Array.from({ length: 6 }, (_, i) => gatedRead(started, `big-${i}`));
    const small = Array.from({ length: 2 }, (_, i) => gatedRead(started, `small-${i}`));
    const results = [...big.map((read) => lane.run("big", read.read)), ...small.map((read) => lane.run("small", read.read))];
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(["big-0", "big-1"]);

    // Each place freed goes to the organisation whose turn it is, not to the longest queue.
    big[0]!.finish();
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(["big-0", "big-1", "big-2"]);
    big[1]!.finish();
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(["big-0", "big-1", "big-2", "small-0"]);
    big[2]!.finish();
    await new Promise((resolve) => setImmediate(resolve));
    expect(started.at(-1)).toBe("big-3");
    small[0]!.finish();
    await new Promise((resolve) => setImmediate(resolve));
    expect(started.at(-1)).toBe("small-1");

    for (const read of [...big, ...small]) read.finish();
    expect(await Promise.all(results)).toEqual([...big.map((_, i) => `big-${i}`), ...small.map((_, i) => `small-${i}`)]);
    expect(started).toHaveLength(8);
  });

  it("frees the place of a read that fails, and passes its error on", async () => {
    const lane = new ListingReads(1);
    await expect(lane.run("acme", () => Promise.reject(new Error("database unreachable")))).rejects.toThrow("database unreachable");
    expect(await lane.run("acme", async () => "next")).toBe("next");
  });

  it("refuses a limit below 1", () => {
    expect(() => new ListingReads(0)).toThrow("at least 1");
  });
});
