import type { AddressInfo } from "node:net";
import { createServer, type Server } from "node:http";
import Provider from "oidc-provider";
import { recordSecrets } from "./run-record.js";

/** One poll of the token endpoint with a device code, as the provider saw it. */
export interface DevicePoll {
  time: number;
  /** The provider's `error`, or "tokens". */
  outcome: string;
}

export interface DeviceFlowProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The device code the provider issued with this user code (to check it leaks nowhere). */
  deviceCodeOf(userCode: string): string | undefined;
  /** The polls of the device code whose user code this is, oldest first. */
  polls(userCode: string): DevicePoll[];
  /** The `interval` the device authorization endpoint announces (RFC 8628 §3.2). */
  interval: number;
  /** Device codes live this many seconds (its `expires_in`). */
  deviceCodeTtl: number;
  /** Answer this many polls of each device code with `slow_down` before anything else (RFC 8628 §3.5). */
  slowDownPolls: number;
  close(): Promise<void>;
}

/**
 * panva/oidc-provider with its `deviceFlow` feature and its development login and consent pages,
 * one confidential client allowed the device code grant. oidc-provider sends no `interval` and
 * never answers `slow_down`: its own event and middleware hooks add both, as RFC 8628 §3.2 and
 * §3.5 describe them, and record every poll.
 */
export async function startDeviceFlowProvider(): Promise<DeviceFlowProvider> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = "device-client";
  const clientSecret = "device-client-secret-8c2e41";
  recordSecrets(clientSecret);
  const state = {
    interval: 1,
    deviceCodeTtl: 120,
    slowDownPolls: 0,
  };
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [],
        response_types: [],
        grant_types: ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    scopes: ["openid", "offline_access"],
    findAccount: (_ctx: unknown, id: string) => ({ accountId: id, claims: () => ({ sub: id }) }),
    ttl: { AccessToken: 600, RefreshToken: 3600, IdToken: 300, Session: 600, Interaction: 600, Grant: 600, DeviceCode: () => state.deviceCodeTtl },
    cookies: { keys: ["device-cookie-key-0123456789abcdef"] },
    features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
  } as never);
  // oidc-provider refuses plain-http cookies unless told it sits behind a TLS proxy.
  provider.proxy = true;
  const deviceCodes = new Map<string, string>();
  const polls = new Map<string, DevicePoll[]>();
  provider.on("device_authorization.success", (_ctx: unknown, body: Record<string, unknown>) => {
    body.interval = state.interval;
    deviceCodes.set(String(body.user_code), String(body.device_code));
    recordSecrets(String(body.device_code));
  });
  provider.use(async (ctx, next) => {
    await next();
    const params = (ctx as { oidc?: { params?: Record<string, unknown> } }).oidc?.params;
    if (ctx.path !== "/token" || params?.grant_type !== "urn:ietf:params:oauth:grant-type:device_code") return;
    const deviceCode = String(params.device_code);
    const seen = polls.get(deviceCode) ?? [];
    polls.set(deviceCode, seen);
    const body = ctx.body as Record<string, unknown> | undefined;
    if (seen.length < state.slowDownPolls && body?.error === "authorization_pending") {
      ctx.status = 400;
      ctx.body = { error: "slow_down", error_description: "you are polling too quickly" };
    }
    const answer = ctx.body as Record<string, unknown> | undefined;
    if (typeof answer?.access_token === "string") recordSecrets(answer.access_token, answer.refresh_token as string, answer.id_token as string);
    seen.push({ time: Date.now(), outcome: typeof answer?.error === "string" ? answer.error : "tokens" });
  });
  server.on("request", provider.callback());
  return {
    issuer,
    clientId,
    clientSecret,
    deviceCodeOf: (userCode) => deviceCodes.get(userCode),
    polls: (userCode) => polls.get(deviceCodes.get(userCode) ?? "") ?? [],
    get interval() {
      return state.interval;
    },
    set interval(value) {
      state.interval = value;
    },
    get deviceCodeTtl() {
      return state.deviceCodeTtl;
    },
    set deviceCodeTtl(value) {
      state.deviceCodeTtl = value;
    },
    get slowDownPolls() {
      return state.slowDownPolls;
    },
    set slowDownPolls(value) {
      state.slowDownPolls = value;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
