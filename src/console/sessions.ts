import { createHmac, hash as digest, randomBytes, timingSafeEqual } from "node:crypto";
import type { Caller } from "../auth/caller.js";
import { callerIdentifier, callerOfApiKey, type IdentifyDeps } from "../auth/identify-caller.js";
import type { ApiKeyStore } from "../store/api-keys.js";
import type { ConsoleSessionStore } from "../store/console-sessions.js";

/** The session cookie. `HttpOnly`: page scripts never see it, so the key it stands for cannot leak. */
export const SESSION_COOKIE = "obk_console";

/**
 * The cookie's name: with https, `__Host-` prefixed, which browsers accept only from this host,
 * `Secure`, with `Path=/` and no `Domain` (RFC 6265bis §4.1.3.2). A sibling subdomain could
 * otherwise plant an `obk_console` cookie for the parent domain that shadows the real one.
 */
export function sessionCookieName(secure: boolean): string {
  return secure ? `__Host-${SESSION_COOKIE}` : SESSION_COOKIE;
}
/**
 * Every RPC authenticated by the cookie must carry this header with the session's CSRF token. A
 * cross-site form cannot set headers, and a cross-site script cannot read the token: the gateway
 * answers no CORS preflight.
 */
export const CSRF_HEADER = "x-console-csrf";

export interface SignedIn {
  /** The cookie's value: a secret, sent only in `Set-Cookie`. */
  cookie: string;
  csrfToken: string;
  caller: Caller;
}

/**
 * Operator console sessions: an API key or the admin token is exchanged once for a short-lived
 * session, kept server-side (so every instance knows it and sign-out ends it everywhere). A
 * session ends as soon as what it was made with stops being valid: an API key revoked or expired,
 * or the admin token changed (a restart with another `BROKER_ADMIN_TOKEN`).
 */
export class ConsoleSessions {
  readonly #identify: ReturnType<typeof callerIdentifier>;

  constructor(
    private readonly deps: IdentifyDeps & { sessions: ConsoleSessionStore; apiKeys: ApiKeyStore; ttlMs: number; cookieName: string },
  ) {
    this.#identify = callerIdentifier(deps);
  }

  get cookieName(): string {
    return this.deps.cookieName;
  }

  /** Undefined when the key is not a valid API key or the admin token (JWTs are for services). */
  async signIn(token: string): Promise<SignedIn | undefined> {
    const identified = await this.#identify(token, { jwt: false });
    if (identified === undefined) return undefined;
    const cookie = randomBytes(32).toString("base64url");
    const now = new Date();
    const { caller } = identified;
    await this.deps.sessions.insert({
      _id: hash(cookie),
      caller_kind: caller.kind,
      ...(caller.kind === "organisation" ? { organisation_id: caller.organisationId } : {}),
      label: caller.label,
      ...(identified.apiKeyHash === undefined ? { admin_token_hash: adminTokenProof(cookie, token) } : { api_key_hash: identified.apiKeyHash }),
      create_time: now,
      expire_time: new Date(now.getTime() + this.deps.ttlMs),
    });
    return { cookie, csrfToken: csrfTokenFor(cookie), caller: { ...caller, viaConsole: true } };
  }

  /** The session's caller and CSRF token, from the cookie alone (for the console to start up). */
  async current(cookieHeader: string | null | undefined): Promise<{ caller: Caller; csrfToken: string } | undefined> {
    const cookie = readCookie(cookieHeader, this.deps.cookieName);
    if (cookie === undefined) return undefined;
    const caller = await this.#callerOf(cookie);
    return caller && { caller, csrfToken: csrfTokenFor(cookie) };
  }

  /** The caller of an RPC authenticated by the cookie, only with the matching CSRF header. */
  async authenticate(headers: Headers): Promise<Caller | undefined> {
    const cookie = readCookie(headers.get("cookie"), this.deps.cookieName);
    const presented = headers.get(CSRF_HEADER);
    if (cookie === undefined || presented === null || !sameSecret(presented, csrfTokenFor(cookie))) return undefined;
    return this.#callerOf(cookie);
  }

  async signOut(cookieHeader: string | null | undefined): Promise<void> {
    const cookie = readCookie(cookieHeader, this.deps.cookieName);
    if (cookie !== undefined) await this.deps.sessions.delete(hash(cookie));
  }

  async #callerOf(cookie: string): Promise<Caller | undefined> {
    const session = await this.deps.sessions.findLive(hash(cookie));
    if (session === null) return undefined;
    if (session.api_key_hash !== undefined) {
      // The key may have been revoked (or expired) since: the session ends with it.
      const caller = callerOfApiKey(await this.deps.apiKeys.findByHash(session.api_key_hash));
      return caller && { ...caller, viaConsole: true };
    }
    // Made with the admin token: only while it is still the token. A session stored before the
    // token was recorded has neither hash, and ends too.
    const proof = session.admin_token_hash;
    if (proof === undefined || !sameSecret(proof, adminTokenProof(cookie, this.deps.adminToken))) return undefined;
    return { kind: "admin", label: session.label, viaConsole: true };
  }
}

/** The CSRF token is derived from the cookie, so nothing more is stored and it dies with the session. */
function csrfTokenFor(cookie: string): string {
  return digest("sha256", `csrf:${cookie}`, "base64url");
}

/** Which admin token made a session, without storing the token's plain hash (see `admin_token_hash`). */
function adminTokenProof(cookie: string, adminToken: string): string {
  return createHmac("sha256", cookie).update(adminToken).digest("base64url");
}

function hash(cookie: string): string {
  return digest("sha256", cookie, "hex");
}

function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest("sha256", a, "buffer"), digest("sha256", b, "buffer"));
}

function readCookie(header: string | null | undefined, cookieName: string): string | undefined {
  if (header == null) return undefined;
  for (const part of header.split(";")) {
    const [name, value] = part.trim().split("=", 2);
    if (name === cookieName && value !== undefined && /^[A-Za-z0-9_-]{43}$/.test(value)) return value;
  }
  return undefined;
}
