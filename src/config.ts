import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { JwtCallerConfig } from "./auth/jwt-callers.js";
import { type EncryptionKey, generateEncryptionKey, parseEncryptionKeys } from "./crypto/secret-box.js";
import { parseTrustedProxies } from "./network/client-address.js";
import { parseOutboundAllowlist } from "./network/address-policy.js";
import { DEFAULT_LISTING_READS } from "./store/listing-reads.js";

/** Everything the broker reads from its environment. */
export interface Config {
  /** `undefined`: start the embedded FerretDB under `dataDir`. */
  mongodbUri: string | undefined;
  /** Database name when the URI does not name one. */
  mongodbDatabase: string;
  /** Public base URL of the HTTP gateway, without a trailing slash. */
  publicUrl: string;
  /** True when BROKER_PUBLIC_URL was not set and the public URL was derived from the HTTP port. */
  publicUrlFromPort: boolean;
  /** How long an operator console session lasts after sign-in. */
  consoleSessionTtlSeconds: number;
  listenHost: string;
  httpPort: number;
  grpcPort: number;
  adminToken: string | undefined;
  encryptionKeys: EncryptionKey[] | undefined;
  stateTtlSeconds: number;
  /** Timeout of each call to a provider (token endpoint, discovery, JWKS, revocation). */
  tokenRequestTimeoutSeconds: number;
  /** GetAccessToken returns tokens valid for at least this long, refreshing earlier ones. */
  tokenMinValiditySeconds: number;
  /** The first retry of a failing refresh waits this long; each next one twice as long, up to an hour. */
  refreshRetryMinSeconds: number;
  /** A connection whose refreshes keep failing this long needs reauthorization. */
  refreshGiveUpSeconds: number;
  /** Connections whose refresh token was not used for this long are refreshed in the background. */
  idleRefreshAfterSeconds: number;
  /** The first webhook retry waits this long; each next one twice as long, up to an hour. */
  webhookRetryMinSeconds: number;
  allowHttpAuthorizeUrl: boolean;
  /** Hosts, addresses and ranges outbound calls may reach even though they are private. */
  outboundAllowlist: string[];
  /** Service-to-service callers with JWTs; undefined when not configured. */
  jwtCallers: JwtCallerConfig | undefined;
  /** OTLP/HTTP endpoint to export traces to (`OTEL_EXPORTER_OTLP_ENDPOINT`); unset: no export. */
  otlpEndpoint: string | undefined;
  /** Sustained RPCs per second per caller (bursts of twice that). */
  rpcRateLimit: number;
  /** RPCs served at once per instance; more are refused with RESOURCE_EXHAUSTED. */
  maxInFlight: number;
  /** RPCs served at once per caller; more are refused with RESOURCE_EXHAUSTED. */
  maxInFlightPerCaller: number;
  /** Streams open at once per caller (per client address for unauthenticated ones). */
  maxStreamsPerCaller: number;
  /** How long published events are kept (BROKER_EVENT_RETENTION). */
  eventRetentionSeconds: number;
  /** Listing and counting calls in flight per organisation, per instance (BROKER_ORG_LISTING_CONCURRENCY). */
  orgListingConcurrency: number;
  /** Database reads of listings and counts in flight per instance, organisations taking turns (BROKER_LISTING_READS). */
  listingReads: number;
  /** Streams are ended (UNAVAILABLE) after this long, so clients reconnect and re-authenticate. */
  streamMaxLifetimeSeconds: number;
  /** Callback requests per minute per client address (bursts of a third of that). */
  callbackRateLimit: number;
  /** Proxies (addresses and CIDR ranges) whose `X-Forwarded-For`/`Forwarded` name the client. */
  trustedProxies: string[];
  dataDir: string;
  logLevel: string;
  /** The provider catalog's directory (`BROKER_PROVIDERS_DIR`); undefined: the repository's providers/. */
  providersDir: string | undefined;
  /** The API proxy's limits (`BROKER_PROXY_*`). */
  proxy: {
    maxBodyBytes: number;
    replayBodyBytes: number;
    maxHeaderBytes: number;
    timeoutSeconds: number;
    maxPerOrganisation: number;
    maxPerConnection: number;
    maxRetries: number;
    maxRetryWaitSeconds: number;
    tokenCacheSeconds: number;
  };
}

/** A configuration mistake; the message names the variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

type Env = Readonly<Record<string, string | undefined>>;

export function loadConfig(env: Env = process.env): Config {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };
  const mongodbUri = read("MONGODB_URI");
  if (mongodbUri !== undefined && !/^mongodb(\+srv)?:\/\//.test(mongodbUri)) {
    throw new ConfigError("MONGODB_URI must start with mongodb:// or mongodb+srv://");
  }
  const adminToken = read("BROKER_ADMIN_TOKEN");
  if (adminToken !== undefined && (adminToken.length < 32 || !/^[\x21-\x7e]+$/.test(adminToken))) {
    throw new ConfigError("BROKER_ADMIN_TOKEN must be at least 32 printable characters with no spaces");
  }
  const keys = read("BROKER_ENCRYPTION_KEYS");
  let encryptionKeys: EncryptionKey[] | undefined;
  if (keys !== undefined) {
    try {
      encryptionKeys = parseEncryptionKeys(keys);
    } catch (error) {
      throw new ConfigError(`BROKER_ENCRYPTION_KEYS: ${(error as Error).message}`);
    }
  }
  if (mongodbUri !== undefined && encryptionKeys === undefined) {
    throw new ConfigError(
      "BROKER_ENCRYPTION_KEYS is required when MONGODB_URI is set (generate one with: npm run --silent generate-key)",
    );
  }
  if (mongodbUri !== undefined && adminToken === undefined) {
    throw new ConfigError("BROKER_ADMIN_TOKEN is required when MONGODB_URI is set");
  }
  const httpPort = parsePort("BROKER_HTTP_PORT", read("BROKER_HTTP_PORT") ?? "8080");
  const publicUrl = read("BROKER_PUBLIC_URL");
  return {
    mongodbUri,
    mongodbDatabase: read("MONGODB_DATABASE") ?? "oauth2_broker",
    // Unset, it follows the HTTP port, so a changed port does not send callbacks to the old one.
    publicUrl: parsePublicUrl(publicUrl ?? `http://localhost:${httpPort}`),
    publicUrlFromPort: publicUrl === undefined,
    listenHost: read("BROKER_LISTEN_HOST") ?? "127.0.0.1",
    httpPort,
    grpcPort: parsePort("BROKER_GRPC_PORT", read("BROKER_GRPC_PORT") ?? "50051"),
    adminToken,
    encryptionKeys,
    consoleSessionTtlSeconds: parseDuration("BROKER_CONSOLE_SESSION_TTL", read("BROKER_CONSOLE_SESSION_TTL") ?? "1h", 60, 86_400),
    stateTtlSeconds: parseDuration("BROKER_STATE_TTL", read("BROKER_STATE_TTL") ?? "10m", 10, 86_400),
    tokenRequestTimeoutSeconds: parseDuration("BROKER_TOKEN_REQUEST_TIMEOUT", read("BROKER_TOKEN_REQUEST_TIMEOUT") ?? "10s", 1, 120),
    tokenMinValiditySeconds: parseDuration("BROKER_TOKEN_MIN_VALIDITY", read("BROKER_TOKEN_MIN_VALIDITY") ?? "60s", 0, 3600),
    refreshRetryMinSeconds: parseDuration("BROKER_REFRESH_RETRY_MIN", read("BROKER_REFRESH_RETRY_MIN") ?? "1s", 0.05, 3600),
    refreshGiveUpSeconds: parseDuration("BROKER_REFRESH_GIVE_UP", read("BROKER_REFRESH_GIVE_UP") ?? "7d", 1, 365 * 86_400),
    idleRefreshAfterSeconds: parseDuration("BROKER_IDLE_REFRESH_AFTER", read("BROKER_IDLE_REFRESH_AFTER") ?? "7d", 1, 365 * 86_400),
    webhookRetryMinSeconds: parseDuration("BROKER_WEBHOOK_RETRY_MIN", read("BROKER_WEBHOOK_RETRY_MIN") ?? "5s", 0.05, 3600),
    allowHttpAuthorizeUrl: parseBoolean("BROKER_ALLOW_HTTP_AUTHORIZE_URL", read("BROKER_ALLOW_HTTP_AUTHORIZE_URL") ?? "false"),
    outboundAllowlist: parseList("BROKER_OUTBOUND_ALLOWLIST", read("BROKER_OUTBOUND_ALLOWLIST") ?? "", parseOutboundAllowlist),
    jwtCallers: parseJwtCallers(read),
    otlpEndpoint: read("OTEL_EXPORTER_OTLP_ENDPOINT"),
    rpcRateLimit: parseCount("BROKER_RPC_RATE_LIMIT", read("BROKER_RPC_RATE_LIMIT") ?? "200"),
    maxInFlight: parseCount("BROKER_MAX_IN_FLIGHT", read("BROKER_MAX_IN_FLIGHT") ?? "1000"),
    maxInFlightPerCaller: parseCount("BROKER_MAX_IN_FLIGHT_PER_CALLER", read("BROKER_MAX_IN_FLIGHT_PER_CALLER") ?? "100"),
    maxStreamsPerCaller: parseCount("BROKER_MAX_STREAMS_PER_CALLER", read("BROKER_MAX_STREAMS_PER_CALLER") ?? "20"),
    eventRetentionSeconds: parseDuration("BROKER_EVENT_RETENTION", read("BROKER_EVENT_RETENTION") ?? "30d", 3600, 10 * 365 * 86_400),
    orgListingConcurrency: parseCount("BROKER_ORG_LISTING_CONCURRENCY", read("BROKER_ORG_LISTING_CONCURRENCY") ?? "8"),
    listingReads: parseCount("BROKER_LISTING_READS", read("BROKER_LISTING_READS") ?? String(DEFAULT_LISTING_READS)),
    streamMaxLifetimeSeconds: parseDuration("BROKER_STREAM_MAX_LIFETIME", read("BROKER_STREAM_MAX_LIFETIME") ?? "1h", 1, 86_400),
    callbackRateLimit: parseCount("BROKER_CALLBACK_RATE_LIMIT", read("BROKER_CALLBACK_RATE_LIMIT") ?? "60"),
    trustedProxies: parseList("BROKER_TRUSTED_PROXIES", read("BROKER_TRUSTED_PROXIES") ?? "", parseTrustedProxies),
    dataDir: read("BROKER_DATA_DIR") ?? "data",
    logLevel: parseLogLevel(read("BROKER_LOG_LEVEL") ?? "info"),
    providersDir: read("BROKER_PROVIDERS_DIR"),
    proxy: {
      maxBodyBytes: parseCount("BROKER_PROXY_MAX_BODY_BYTES", read("BROKER_PROXY_MAX_BODY_BYTES") ?? "104857600", 10_000_000_000),
      replayBodyBytes: parseCount("BROKER_PROXY_REPLAY_BODY_BYTES", read("BROKER_PROXY_REPLAY_BODY_BYTES") ?? "1048576", 1_000_000_000),
      maxHeaderBytes: parseCount("BROKER_PROXY_MAX_HEADER_BYTES", read("BROKER_PROXY_MAX_HEADER_BYTES") ?? "16384"),
      timeoutSeconds: parseDuration("BROKER_PROXY_TIMEOUT", read("BROKER_PROXY_TIMEOUT") ?? "60s", 1, 3600),
      maxPerOrganisation: parseCount("BROKER_PROXY_MAX_PER_ORGANISATION", read("BROKER_PROXY_MAX_PER_ORGANISATION") ?? "200"),
      maxPerConnection: parseCount("BROKER_PROXY_MAX_PER_CONNECTION", read("BROKER_PROXY_MAX_PER_CONNECTION") ?? "50"),
      maxRetries: parseCount("BROKER_PROXY_MAX_RETRIES", read("BROKER_PROXY_MAX_RETRIES") ?? "3"),
      maxRetryWaitSeconds: parseDuration("BROKER_PROXY_MAX_RETRY_WAIT", read("BROKER_PROXY_MAX_RETRY_WAIT") ?? "30s", 0, 600),
      tokenCacheSeconds: parseDuration("BROKER_PROXY_TOKEN_CACHE", read("BROKER_PROXY_TOKEN_CACHE") ?? "1s", 0, 10),
    },
  };
}

function parsePublicUrl(value: string): string {
  const url = URL.parse(value);
  if (url === null) throw new ConfigError("BROKER_PUBLIC_URL must be an absolute URL");
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new ConfigError("BROKER_PUBLIC_URL must be an http(s) URL");
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new ConfigError("BROKER_PUBLIC_URL must not have a query, fragment or credentials");
  }
  return url.href.replace(/\/+$/, "");
}

function parseList(name: string, value: string, parse: (text: string) => string[]): string[] {
  try {
    return parse(value);
  } catch (error) {
    throw new ConfigError(`${name}: ${(error as Error).message}`);
  }
}

function parseCount(name: string, value: string, max?: number): number {
  if (!/^\d{1,11}$/.test(value) || Number(value) < 1 || Number(value) > (max ?? 9_999_999)) {
    throw new ConfigError(`${name} must be a whole number from 1${max === undefined ? "" : ` to ${max}`}`);
  }
  return Number(value);
}

/** BROKER_JWT_ISSUER turns JWT callers on; the audience is then required. */
function parseJwtCallers(read: (name: string) => string | undefined): JwtCallerConfig | undefined {
  const issuer = read("BROKER_JWT_ISSUER");
  if (issuer === undefined) return undefined;
  const audience = read("BROKER_JWT_AUDIENCE");
  if (audience === undefined) throw new ConfigError("BROKER_JWT_AUDIENCE is required when BROKER_JWT_ISSUER is set");
  const jwksUrl = read("BROKER_JWT_JWKS_URL") ?? `${issuer.replace(/\/+$/, "")}/.well-known/jwks.json`;
  for (const [name, value] of [
    ["BROKER_JWT_ISSUER", issuer],
    ["BROKER_JWT_JWKS_URL", jwksUrl],
  ] as const) {
    if (!URL.canParse(value)) throw new ConfigError(`${name} must be an absolute URL`);
  }
  return { issuer, audience, jwksUrl, organisationClaim: read("BROKER_JWT_ORGANISATION_CLAIM") ?? "org_id" };
}

function parsePort(name: string, value: string): number {
  const port = Number(value);
  if (!/^\d{1,5}$/.test(value) || port > 65_535) throw new ConfigError(`${name} must be a port number from 0 to 65535`);
  return port;
}

/** Seconds, or a number with a unit: `90`, `250ms`, `90s`, `10m`, `1h`, `7d`. Returns seconds. */
export function parseDuration(name: string, value: string, min: number, max: number): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(value);
  if (match === null) throw new ConfigError(`${name} must be a duration such as 600, 90s, 10m, 1h or 7d`);
  const unit = (match[2] ?? "s") as "ms" | "s" | "m" | "h" | "d";
  const seconds = Number(match[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 }[unit];
  if (seconds < min || seconds > max) throw new ConfigError(`${name} must be from ${min}s to ${max}s`);
  return seconds;
}

function parseBoolean(name: string, value: string): boolean {
  if (value === "true" || value === "1") return true;
  if (value === "false" || value === "0") return false;
  throw new ConfigError(`${name} must be true or false`);
}

function parseLogLevel(value: string): string {
  if (!["trace", "debug", "info", "warn", "error", "fatal", "silent"].includes(value)) {
    throw new ConfigError("BROKER_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent");
  }
  return value;
}

/**
 * For the embedded (local) mode only: an admin token and an encryption key kept under the data
 * directory, generated on first start, so a newcomer needs no set-up and restarts keep working.
 * Returns what was generated, for a warning.
 */
export function applyLocalDefaults(config: Config): { generated: string[] } {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const generated: string[] = [];
  const readOrCreate = (file: string, create: () => string): string => {
    const path = join(config.dataDir, file);
    try {
      return readFileSync(path, "utf8").trim();
    } catch {
      const value = create();
      writeFileSync(path, `${value}\n`, { mode: 0o600, flag: "wx" });
      generated.push(path);
      return value;
    }
  };
  config.adminToken ??= readOrCreate("admin-token", () => randomBytes(32).toString("base64url"));
  if (config.encryptionKeys === undefined) {
    config.encryptionKeys = parseEncryptionKeys(readOrCreate("encryption-keys", () => generateEncryptionKey("local1")));
  }
  return { generated };
}
