import { createHmac, randomBytes } from "node:crypto";

/** A new signing secret in the Standard Webhooks format: `whsec_` and 32 random bytes, base64. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

/**
 * The Standard Webhooks signature headers (standardwebhooks.com): HMAC-SHA256 over
 * `<id>.<timestamp>.<raw body>` with each valid secret, space-separated, so a receiver holding
 * either the new or the previous secret verifies the event during a rotation. The timestamp lets
 * receivers refuse replays of old deliveries.
 */
export function signWebhook(
  id: string,
  timestamp: number,
  body: string,
  secrets: readonly string[],
): Record<string, string> {
  const signatures = secrets.map((secret) => {
    const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
    return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
  });
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signatures.join(" "),
  };
}
