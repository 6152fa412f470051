import { createPrivateKey, createPublicKey, generateKeyPair, type JsonWebKey as NodeJwk, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import * as jose from "jose";
import { invalid } from "../errors.js";

/** The JWS algorithms a credential key signs with (RFC 7518 §3.1): P-256 ECDSA or RSA PKCS#1 v1.5. */
export type SigningAlgorithm = "ES256" | "RS256";

/** A private signing key as the broker holds it (before encryption at rest) and its public half. */
export interface ParsedSigningKey {
  kid: string;
  alg: SigningAlgorithm;
  /** The private JWK: secret, encrypted at rest, never returned. */
  privateJwk: NodeJwk;
  /** The public JWK exactly as the JWKS publishes it. */
  publicJwk: Record<string, string>;
  /** Google service-account keys: what the JWT bearer grant needs besides the key. */
  serviceAccount?: { clientEmail: string; tokenUri: string };
}

/** Uploaded key material larger than this is refused before it is parsed. */
export const MAX_KEY_INPUT_CHARS = 16_384;
const MIN_RSA_BITS = 2048;
const KID = /^[\x21-\x7e]{1,128}$/;

const generatePair = promisify(generateKeyPair);

/** A new key pair made here: ES256 (P-256) unless the provider requires RS256 (2048-bit RSA). */
export async function generateSigningKey(alg: SigningAlgorithm): Promise<ParsedSigningKey> {
  // Asynchronous: an RSA key takes tens of milliseconds, off the event loop.
  const { privateKey } =
    alg === "ES256" ? await generatePair("ec", { namedCurve: "P-256" }) : await generatePair("rsa", { modulusLength: 2048 });
  return fromKeyObject(privateKey, undefined);
}

/** A PEM private key (PKCS #8, SEC 1 or PKCS #1). Never echoes the input. */
export async function parsePemKey(pem: string, field: string): Promise<ParsedSigningKey> {
  requireSize(pem, field);
  if (!pem.includes("PRIVATE KEY-----")) invalid(field, "is not a PEM private key");
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: "pem" });
  } catch {
    return invalid(field, "is not a readable PEM private key");
  }
  return fromKeyObject(key, undefined, field);
}

/** A private JWK (RFC 7517) as JSON; its own `kid` is kept. */
export async function parseJwkKey(json: string, field: string): Promise<ParsedSigningKey> {
  requireSize(json, field);
  let jwk: NodeJwk & { kid?: unknown };
  try {
    jwk = JSON.parse(json) as NodeJwk & { kid?: unknown };
  } catch {
    return invalid(field, "is not JSON");
  }
  if (typeof jwk !== "object" || jwk === null || typeof jwk.d !== "string") invalid(field, "is not a private JWK (it has no \"d\")");
  if (jwk.kid !== undefined && (typeof jwk.kid !== "string" || !KID.test(jwk.kid))) invalid(`${field}.kid`, "must be 1 to 128 printable characters");
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: jwk, format: "jwk" });
  } catch {
    return invalid(field, "is not a usable private JWK");
  }
  return fromKeyObject(key, jwk.kid as string | undefined, field);
}

/**
 * A Google service-account JSON key file (https://cloud.google.com/iam/docs/keys-create-delete):
 * `private_key` (PKCS #8 PEM, RSA), `private_key_id` (its `kid`), `client_email` and `token_uri`.
 */
export async function parseGoogleServiceAccount(json: string, field: string): Promise<ParsedSigningKey> {
  requireSize(json, field);
  let file: Record<string, unknown>;
  try {
    file = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return invalid(field, "is not JSON");
  }
  if (typeof file !== "object" || file === null || file.type !== "service_account") invalid(`${field}.type`, 'must be "service_account"');
  const text = (name: string, pattern: RegExp): string => {
    const value = file[name];
    if (typeof value !== "string" || !pattern.test(value)) invalid(`${field}.${name}`, "is missing or malformed");
    return value;
  };
  const kid = text("private_key_id", KID);
  const clientEmail = text("client_email", /^[^\s@]{1,256}@[^\s@]{1,256}$/);
  const tokenUri = text("token_uri", /^https:\/\/\S{1,2040}$/);
  const parsed = await parsePemKey(text("private_key", /PRIVATE KEY-----/), `${field}.private_key`);
  if (parsed.alg !== "RS256") invalid(`${field}.private_key`, "must be an RSA key");
  return { ...parsed, kid, publicJwk: { ...parsed.publicJwk, kid }, serviceAccount: { clientEmail, tokenUri } };
}

/** The algorithm the key's type and size allow, its JWKs, and a `kid` (given, else its RFC 7638 thumbprint). */
async function fromKeyObject(key: KeyObject, givenKid: string | undefined, field = "key"): Promise<ParsedSigningKey> {
  let alg: SigningAlgorithm;
  if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") alg = "ES256";
  else if (key.asymmetricKeyType === "rsa" && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= MIN_RSA_BITS) alg = "RS256";
  else return invalid(field, "must be a P-256 (ES256) or an RSA key of at least 2048 bits (RS256)");
  const privateJwk = key.export({ format: "jwk" });
  const { kty, crv, x, y, n, e } = createPublicKey(key).export({ format: "jwk" });
  const bare = Object.fromEntries(Object.entries({ kty, crv, x, y, n, e }).filter(([, value]) => value !== undefined)) as Record<string, string>;
  const kid = givenKid ?? (await jose.calculateJwkThumbprint(bare as jose.JWK, "sha256"));
  return { kid, alg, privateJwk, publicJwk: { ...bare, kid, alg, use: "sig" } };
}

function requireSize(value: string, field: string): void {
  if (value.trim() === "") invalid(field, "is required");
  if (value.length > MAX_KEY_INPUT_CHARS) invalid(field, `must be at most ${MAX_KEY_INPUT_CHARS} characters`);
}
