import type { SecretBox } from "./secret-box.js";

/**
 * The ciphertext re-encrypted under the primary key, or undefined when it already is. Used by
 * each store's `reencrypt`, which the `npm run reencrypt` command calls after a key rotation.
 */
export function reencrypted(box: SecretBox, ciphertext: string, context: string): string | undefined {
  if (ciphertext.startsWith(`${box.primaryKeyId}.`)) return undefined;
  return box.encrypt(box.decrypt(ciphertext, context), context);
}
