import { describe, expect, it } from "vitest";
import { generateEncryptionKey, parseEncryptionKeys, SecretBox } from "../../src/crypto/secret-box.js";

const oldKeys = parseEncryptionKeys(generateEncryptionKey("old"));
const newKeys = parseEncryptionKeys(generateEncryptionKey("new"));

describe("SecretBox", () => {
  it("round-trips and tags the ciphertext with the key ID, never the plaintext", () => {
    const box = new SecretBox(oldKeys);
    const sealed = box.encrypt("s3cret-value", "credentials/1/client_secret");
    expect(sealed.startsWith("old.")).toBe(true);
    expect(sealed).not.toContain("s3cret");
    expect(box.decrypt(sealed, "credentials/1/client_secret")).toBe("s3cret-value");
  });

  it("uses a fresh IV each time", () => {
    const box = new SecretBox(oldKeys);
    expect(box.encrypt("x", "c")).not.toBe(box.encrypt("x", "c"));
  });

  it("rotates: the first key encrypts, older keys still decrypt", () => {
    const sealedWithOld = new SecretBox(oldKeys).encrypt("v", "c");
    const rotated = new SecretBox([...newKeys, ...oldKeys]);
    expect(rotated.decrypt(sealedWithOld, "c")).toBe("v");
    expect(rotated.encrypt("v", "c").startsWith("new.")).toBe(true);
    expect(() => new SecretBox(newKeys).decrypt(sealedWithOld, "c")).toThrow('no encryption key with ID "old"');
  });

  it("refuses a ciphertext moved to another record (bound context)", () => {
    const box = new SecretBox(oldKeys);
    const sealed = box.encrypt("v", "credentials/1/client_secret");
    expect(() => box.decrypt(sealed, "credentials/2/client_secret")).toThrow();
  });

  it("refuses a tampered ciphertext", () => {
    const box = new SecretBox(oldKeys);
    const [id, iv, data] = box.encrypt("value", "c").split(".") as [string, string, string];
    const bytes = Buffer.from(data, "base64url");
    bytes[0] = (bytes[0] ?? 0) ^ 1;
    expect(() => box.decrypt(`${id}.${iv}.${bytes.toString("base64url")}`, "c")).toThrow();
    expect(() => box.decrypt("old.only-two", "c")).toThrow("malformed ciphertext");
  });
});

describe("parseEncryptionKeys", () => {
  it("accepts base64 and base64url keys, in order", () => {
    const key = Buffer.alloc(32, 0xfb);
    const keys = parseEncryptionKeys(`a:${key.toString("base64url")}, b:${key.toString("base64")}`);
    expect(keys.map((k) => k.id)).toEqual(["a", "b"]);
    expect(keys.every((k) => k.key.equals(key))).toBe(true);
  });

  it.each([
    ["", "at least one key is required"],
    ["nokey", "each key must be written as <id>:<base64 key>"],
    [`bad id:${Buffer.alloc(32).toString("base64")}`, 'key ID "bad id" must be 1 to 32 characters of A-Z a-z 0-9 _ -'],
    [`k:${Buffer.alloc(16).toString("base64")}`, 'key "k" must decode to 32 bytes (got 16)'],
    ["k:not*base64", 'key "k" is not base64'],
    [`k:${Buffer.alloc(32).toString("base64")},k:${Buffer.alloc(32).toString("base64")}`, "key IDs must be unique"],
  ])("rejects %j", (text, message) => {
    expect(() => parseEncryptionKeys(text)).toThrow(message);
  });
});
