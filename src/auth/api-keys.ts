import { hash, randomBytes } from "node:crypto";

/**
 * API keys read `obk_<8 identifying characters>_<43 random characters>`: the prefix can be shown
 * and logged, the rest is 256 bits from a CSPRNG. Only a SHA-256 of the whole key is stored: a
 * key that random needs no slow hash, and lookups stay one indexed read.
 */
export const API_KEY_PATTERN = /^obk_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}$/;

export function generateApiKey(): { key: string; prefix: string; hash: string } {
  const prefix = `obk_${randomBytes(6).toString("base64url").replace(/[-_]/g, "x").slice(0, 8)}`;
  const key = `${prefix}_${randomBytes(32).toString("base64url")}`;
  return { key, prefix, hash: hashApiKey(key) };
}

export function hashApiKey(key: string): string {
  return hash("sha256", key, "base64url");
}

/** A well-formed key; anything else is refused without a database read. */
export function looksLikeApiKey(token: string): boolean {
  return API_KEY_PATTERN.test(token);
}
