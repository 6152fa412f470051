import { pino, type Logger } from "pino";

/**
 * Structured JSON logs. Secrets are never passed to the logger on purpose; redaction is the
 * second line of defence for any that slip into a logged object.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "oauth2-broker" },
      redact: {
        paths: [
          "authorization",
          "*.authorization",
          "headers.authorization",
          "*.headers.authorization",
          "client_secret",
          "*.client_secret",
          "code_verifier",
          "*.code_verifier",
          "state",
          "*.state",
          "access_token",
          "*.access_token",
          "refresh_token",
          "*.refresh_token",
          "previous_client_secret",
          "*.previous_client_secret",
          "client_assertion",
          "*.client_assertion",
          "assertion",
          "*.assertion",
          "private_key",
          "*.private_key",
          "id_token",
          "*.id_token",
          "code",
          "*.code",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}

export type { Logger };
