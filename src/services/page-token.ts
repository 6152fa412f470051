import { invalid } from "../errors.js";

/** Page tokens are the last ID shown (a UUIDv7), opaque to callers. */
export function encodePageToken(id: string): string {
  return Buffer.from(id, "utf8").toString("base64url");
}

export function decodePageToken(token: string): string {
  const id = /^[A-Za-z0-9_-]{1,200}$/.test(token) ? Buffer.from(token, "base64url").toString("utf8") : "";
  if (!/^[0-9a-f-]{36}$/.test(id)) invalid("page_token", "is not a token from a previous page");
  return id;
}

export const DEFAULT_PAGE_SIZE = 50;

/** `page_size`, 0 to 100 by the request rules: 0 means the default. */
export function pageSize(requested: number): number {
  return requested === 0 ? DEFAULT_PAGE_SIZE : requested;
}

/**
 * A page of `documents`, which were read with one more than `size` asked for: the extra one only
 * tells that another page exists; the token names the last one shown.
 */
export function pageOf<T extends { _id: string }>(documents: readonly T[], size: number): { shown: T[]; nextPageToken: string } {
  const shown = documents.slice(0, size);
  const last = shown.at(-1);
  return { shown, nextPageToken: documents.length > size && last !== undefined ? encodePageToken(last._id) : "" };
}
