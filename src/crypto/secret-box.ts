import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/** One AES-256 key and the ID that tags every ciphertext made with it. */
export interface EncryptionKey {
  id: string;
  key: Buffer;
}

export const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const IV_BYTES = 12; // NIST SP 800-38D §8.2: 96-bit random IVs
const TAG_BYTES = 16;

/**
 * Encrypts secrets at rest with AES-256-GCM. Ciphertexts read `<key id>.<iv>.<ciphertext+tag>`
 * (base64url), so keys can rotate: the first key encrypts, every key decrypts.
 *
 * `context` is bound as additional authenticated data (for example `credentials/<id>/client_secret`)
 * so a ciphertext copied into another record or field fails to decrypt.
 */
export class SecretBox {
  readonly #primary: EncryptionKey;
  readonly #byId: ReadonlyMap<string, Buffer>;

  constructor(keys: readonly EncryptionKey[]) {
    const [primary] = keys;
    if (primary === undefined) throw new Error("at least one encryption key is required");
    for (const { id, key } of keys) {
      if (!KEY_ID.test(id)) throw new Error(`encryption key ID "${id}" must be 1 to 32 characters of A-Z a-z 0-9 _ -`);
      if (key.length !== 32) throw new Error(`encryption key "${id}" must be 32 bytes`);
    }
    this.#primary = primary;
    this.#byId = new Map(keys.map(({ id, key }) => [id, key]));
  }

  get primaryKeyId(): string {
    return this.#primary.id;
  }

  encrypt(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#primary.key, iv);
    cipher.setAAD(Buffer.from(context, "utf8"));
    const sealed = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
    return `${this.#primary.id}.${iv.toString("base64url")}.${sealed.toString("base64url")}`;
  }

  decrypt(ciphertext: string, context: string): string {
    const [keyId, iv, sealed, extra] = ciphertext.split(".");
    if (keyId === undefined || iv === undefined || sealed === undefined || extra !== undefined) {
      throw new Error("malformed ciphertext");
    }
    const key = this.#byId.get(keyId);
    if (key === undefined) throw new Error(`no encryption key with ID "${keyId}"`);
    const data = Buffer.from(sealed, "base64url");
    if (data.length < TAG_BYTES) throw new Error("malformed ciphertext");
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
    decipher.setAAD(Buffer.from(context, "utf8"));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_BYTES)), decipher.final()]).toString("utf8");
  }
}

/** Parses `BROKER_ENCRYPTION_KEYS`: `id:base64key[,id:base64key…]`, the first one encrypting. */
export function parseEncryptionKeys(text: string): EncryptionKey[] {
  const keys = text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry) => {
      const colon = entry.indexOf(":");
      if (colon === -1) throw new Error("each key must be written as <id>:<base64 key>");
      const id = entry.slice(0, colon);
      const encoded = entry.slice(colon + 1);
      if (!KEY_ID.test(id)) throw new Error(`key ID "${id.slice(0, 40)}" must be 1 to 32 characters of A-Z a-z 0-9 _ -`);
      if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded)) throw new Error(`key "${id}" is not base64`);
      const key = Buffer.from(encoded, encoded.includes("-") || encoded.includes("_") ? "base64url" : "base64");
      if (key.length !== 32) throw new Error(`key "${id}" must decode to 32 bytes (got ${key.length})`);
      return { id, key };
    });
  if (keys.length === 0) throw new Error("at least one key is required");
  if (new Set(keys.map((k) => k.id)).size !== keys.length) throw new Error("key IDs must be unique");
  return keys;
}

export function generateEncryptionKey(id: string): string {
  return `${id}:${randomBytes(32).toString("base64")}`;
}
