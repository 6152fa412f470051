import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";
import { generateEncryptionKey } from "../src/crypto/secret-box.js";

const production = {
  MONGODB_URI: "mongodb://db.internal:27017/broker",
  BROKER_ADMIN_TOKEN: "a".repeat(40),
  BROKER_ENCRYPTION_KEYS: generateEncryptionKey("k1"),
};

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("has defaults for the embedded mode", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      mongodbUri: undefined,
      publicUrl: "http://localhost:8080",
      httpPort: 8080,
      grpcPort: 50051,
      stateTtlSeconds: 600,
      refreshRetryMinSeconds: 1,
      refreshGiveUpSeconds: 7 * 86_400,
      idleRefreshAfterSeconds: 7 * 86_400,
      allowHttpAuthorizeUrl: false,
      dataDir: "data",
      trustedProxies: [],
      maxInFlightPerCaller: 100,
      maxStreamsPerCaller: 20,
      streamMaxLifetimeSeconds: 3600,
    });
  });

  it("derives the public URL from BROKER_HTTP_PORT when BROKER_PUBLIC_URL is unset (regression: callbacks went to port 8080)", () => {
    expect(loadConfig({ BROKER_HTTP_PORT: "9080" })).toMatchObject({ publicUrl: "http://localhost:9080", publicUrlFromPort: true });
    expect(loadConfig({ BROKER_HTTP_PORT: "9080", BROKER_PUBLIC_URL: "https://b.example.com" })).toMatchObject({
      publicUrl: "https://b.example.com",
      publicUrlFromPort: false,
    });
  });

  it("reads every documented variable", () => {
    const config = loadConfig({
      ...production,
      BROKER_PUBLIC_URL: "https://broker.example.com/base/",
      BROKER_HTTP_PORT: "9000",
      BROKER_GRPC_PORT: "9001",
      BROKER_STATE_TTL: "15m",
      BROKER_ALLOW_HTTP_AUTHORIZE_URL: "true",
      BROKER_REFRESH_RETRY_MIN: "250ms",
      BROKER_REFRESH_GIVE_UP: "3d",
      BROKER_IDLE_REFRESH_AFTER: "30d",
      BROKER_TRUSTED_PROXIES: "10.0.0.0/8, 2001:db8::1",
      BROKER_MAX_IN_FLIGHT_PER_CALLER: "50",
      BROKER_MAX_STREAMS_PER_CALLER: "5",
      BROKER_STREAM_MAX_LIFETIME: "30m",
    });
    expect(config.trustedProxies).toEqual(["10.0.0.0/8", "2001:db8::1"]);
    expect(config).toMatchObject({ maxInFlightPerCaller: 50, maxStreamsPerCaller: 5, streamMaxLifetimeSeconds: 1800 });
    expect(config).toMatchObject({ refreshRetryMinSeconds: 0.25, refreshGiveUpSeconds: 3 * 86_400, idleRefreshAfterSeconds: 30 * 86_400 });
    expect(config.publicUrl).toBe("https://broker.example.com/base");
    expect(config.httpPort).toBe(9000);
    expect(config.grpcPort).toBe(9001);
    expect(config.stateTtlSeconds).toBe(900);
    expect(config.allowHttpAuthorizeUrl).toBe(true);
    expect(config.encryptionKeys?.[0]?.id).toBe("k1");
  });

  it("refuses to start against a real database without an encryption key", () => {
    expect(configError({ MONGODB_URI: production.MONGODB_URI, BROKER_ADMIN_TOKEN: production.BROKER_ADMIN_TOKEN })).toMatch(
      /^BROKER_ENCRYPTION_KEYS is required when MONGODB_URI is set/,
    );
  });

  it("refuses to start against a real database without an admin token", () => {
    expect(configError({ MONGODB_URI: production.MONGODB_URI, BROKER_ENCRYPTION_KEYS: production.BROKER_ENCRYPTION_KEYS })).toBe(
      "BROKER_ADMIN_TOKEN is required when MONGODB_URI is set",
    );
  });

  it.each([
    ["MONGODB_URI", "postgres://x", "MONGODB_URI must start with mongodb:// or mongodb+srv://"],
    ["BROKER_PUBLIC_URL", "not a url", "BROKER_PUBLIC_URL must be an absolute URL"],
    ["BROKER_PUBLIC_URL", "https://b.example/?x=1", "BROKER_PUBLIC_URL must not have a query, fragment or credentials"],
    ["BROKER_HTTP_PORT", "80a", "BROKER_HTTP_PORT must be a port number from 0 to 65535"],
    ["BROKER_GRPC_PORT", "70000", "BROKER_GRPC_PORT must be a port number from 0 to 65535"],
    ["BROKER_ADMIN_TOKEN", "short", "BROKER_ADMIN_TOKEN must be at least 32 printable characters with no spaces"],
    ["BROKER_ENCRYPTION_KEYS", "k1:abc", 'BROKER_ENCRYPTION_KEYS: key "k1" must decode to 32 bytes (got 2)'],
    ["BROKER_STATE_TTL", "ten minutes", "BROKER_STATE_TTL must be a duration such as 600, 90s, 10m, 1h or 7d"],
    ["BROKER_STATE_TTL", "2w", "BROKER_STATE_TTL must be a duration such as 600, 90s, 10m, 1h or 7d"],
    ["BROKER_STATE_TTL", "2d", "BROKER_STATE_TTL must be from 10s to 86400s"],
    ["BROKER_REFRESH_GIVE_UP", "0", "BROKER_REFRESH_GIVE_UP must be from 1s to 31536000s"],
    ["BROKER_IDLE_REFRESH_AFTER", "7 days", "BROKER_IDLE_REFRESH_AFTER must be a duration such as 600, 90s, 10m, 1h or 7d"],
    ["BROKER_STATE_TTL", "5s", "BROKER_STATE_TTL must be from 10s to 86400s"],
    ["BROKER_ALLOW_HTTP_AUTHORIZE_URL", "yes", "BROKER_ALLOW_HTTP_AUTHORIZE_URL must be true or false"],
    ["BROKER_TRUSTED_PROXIES", "lb.internal", 'BROKER_TRUSTED_PROXIES: "lb.internal" is not an IP address or CIDR range'],
    ["BROKER_MAX_IN_FLIGHT_PER_CALLER", "0", "BROKER_MAX_IN_FLIGHT_PER_CALLER must be a whole number from 1"],
    ["BROKER_MAX_STREAMS_PER_CALLER", "-1", "BROKER_MAX_STREAMS_PER_CALLER must be a whole number from 1"],
    ["BROKER_STREAM_MAX_LIFETIME", "2d", "BROKER_STREAM_MAX_LIFETIME must be from 1s to 86400s"],
    ["BROKER_STREAM_MAX_LIFETIME", "2 days", "BROKER_STREAM_MAX_LIFETIME must be a duration such as 600, 90s, 10m, 1h or 7d"],
    ["BROKER_LOG_LEVEL", "loud", "BROKER_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent"],
    ["BROKER_PROXY_MAX_BODY_BYTES", "0", "BROKER_PROXY_MAX_BODY_BYTES must be a whole number from 1 to 10000000000"],
    ["BROKER_PROXY_REPLAY_BODY_BYTES", "1k", "BROKER_PROXY_REPLAY_BODY_BYTES must be a whole number from 1 to 1000000000"],
    ["BROKER_PROXY_MAX_PER_CONNECTION", "0", "BROKER_PROXY_MAX_PER_CONNECTION must be a whole number from 1"],
    ["BROKER_PROXY_TIMEOUT", "2h", "BROKER_PROXY_TIMEOUT must be from 1s to 3600s"],
    ["BROKER_PROXY_MAX_RETRY_WAIT", "1h", "BROKER_PROXY_MAX_RETRY_WAIT must be from 0s to 600s"],
  ])("names %s when it is invalid (%j)", (name, value, message) => {
    expect(configError({ ...production, [name]: value })).toBe(message);
  });
});
