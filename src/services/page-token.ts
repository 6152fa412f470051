import { invalid } from "../errors.js";
import type { ListPosition } from "../store/connections.js";

/** Page tokens are the last ID shown (a UUIDv7), opaque to callers. */
export function encodePageToken(id: string): string {
  return Buffer.from(id, "utf8").toString("base64url");
}

export function decodePageToken(token: string): string {
  const id = /^[A-Za-z0-9_-]{1,200}$/.test(token) ? Buffer.from(token, "base64url").toString("utf8") : "";
  if (!/^[0-9a-f-]{36}$/.test(id)) invalid("page_token", "is not a token from a previous page");
  return id;
}

/**
 * Connection pages end at a directory slot (`s<seq>`), or, for tokens from before the directory,
 * at a connection ID; both opaque to callers.
 */
export function encodeListPosition(position: ListPosition): string {
  return "id" in position ? encodePageToken(position.id) : Buffer.from(`s${position.seq}`, "utf8").toString("base64url");
}

export function decodeListPosition(token: string): ListPosition {
  const text = /^[A-Za-z0-9_-]{1,200}$/.test(token) ? Buffer.from(token, "base64url").toString("utf8") : "";
  const slot = /^s(-?\d{1,15})$/.exec(text);
  return slot !== null ? { seq: Number(slot[1]) } : { id: decodePageToken(token) };
}

export const DEFAULT_PAGE_SIZE = 50;

/** `page_size`, 0 to 100 by the request rules: 0 means the default. */
export function pageSize(requested: number): number {
  return requested === 0 ? DEFAULT_PAGE_SIZE : requested;
}

/**
 * A page of `items`, which were read with one more than `size` asked for: the extra one only
 * tells that another page exists; the token names the last one shown (by its `_id`, unless
 * `tokenOf` says otherwise).
 */
export function pageOf<T>(
  items: readonly T[],
  size: number,
  tokenOf: (item: T) => string = (item) => encodePageToken((item as { _id: string })._id),
): { shown: T[]; nextPageToken: string } {
  const shown = items.slice(0, size);
  const last = shown.at(-1);
  return { shown, nextPageToken: items.length > size && last !== undefined ? tokenOf(last) : "" };
}
