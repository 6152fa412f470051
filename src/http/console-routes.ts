import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Caller } from "../auth/caller.js";
import { CSRF_HEADER, type ConsoleSessions } from "../console/sessions.js";
import type { RateLimiter } from "../interceptors/rate-limit.js";
import { clientAddress, clientLimitKey, type TrustedProxies } from "../network/client-address.js";
import { BodyTooLarge, readBody } from "./rest-routes.js";
import { setBrowserSecurityHeaders } from "./pages.js";
import { sendBody } from "./routes.js";
import type { HttpRequest, HttpResponse, HttpRoute } from "./http-types.js";

/** Where the console's built files are (`npm run build` writes them). */
export function consoleDistDir(root: string): string {
  return join(root, "dist", "console");
}

/** The path the console's own flows return to; always allowed for flows the console starts. */
export const CONSOLE_RETURN_PATH = "/console/flow-result";

const ASSETS: Record<string, string> = {
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
};

/**
 * The console's pages may load only their own script and stylesheet and talk only to this
 * gateway: no inline script or style, no third party, no framing.
 */
const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The console's headers. `Cross-Origin-Opener-Policy: same-origin` puts a provider page the
 * console opened in a tab of its own browsing context group, so it cannot reach back and navigate
 * the operator's console (issue 20, item 4). Only on the console: an organisation's own pop-up
 * flow passes through the callback and needs its opener.
 */
function setConsoleHeaders(res: HttpResponse): void {
  setBrowserSecurityHeaders(res, CONSOLE_CSP);
  res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
}

export interface ConsoleRouteDeps {
  sessions: ConsoleSessions;
  /** Sign-in attempts per client address. */
  limiter: RateLimiter;
  /** Whose forwarding headers name the client (the callback limiter's rule). */
  trustedProxies: TrustedProxies;
  /** The session cookie is `Secure` and `__Host-` prefixed when the public URL is https. */
  secureCookie: boolean;
  sessionTtlSeconds: number;
  distDir: string;
}

/**
 * The operator console on the HTTP gateway: its static files under `/console`, and its session
 * routes `POST /console/session` (sign in), `GET /console/session` (who is signed in, and the CSRF
 * token) and `DELETE /console/session` (sign out). Everything else goes through the Connect API.
 */
export function consoleRoutes(deps: ConsoleRouteDeps): HttpRoute[] {
  const files = loadFiles(deps.distDir);
  const cookie = (value: string, maxAge: number) =>
    `${deps.sessions.cookieName}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${deps.secureCookie ? "; Secure" : ""}`;
  return [
    {
      matches: (path) => path === "/console/session",
      async handle(req, res) {
        setConsoleHeaders(res);
        if (req.method === "GET") {
          const current = await deps.sessions.current(req.headers.cookie);
          if (current === undefined) return sendJson(res, 401, { code: "unauthenticated", message: "not signed in" });
          return sendJson(res, 200, { csrfToken: current.csrfToken, caller: describe(current.caller), csrfHeader: CSRF_HEADER });
        }
        if (req.method === "POST") return signIn(deps, req, res, cookie);
        if (req.method === "DELETE") {
          // Sign-out also needs the CSRF header: no other site can end an operator's session.
          const caller = await deps.sessions.authenticate(headersOf(req));
          if (caller === undefined) return sendJson(res, 401, { code: "unauthenticated", message: "not signed in" });
          await deps.sessions.signOut(req.headers.cookie);
          res.setHeader("Set-Cookie", cookie("", 0));
          return sendJson(res, 200, {});
        }
        res.setHeader("Allow", "GET, POST, DELETE");
        return sendJson(res, 405, { code: "unimplemented", message: "use GET, POST or DELETE" });
      },
    },
    {
      matches: (path) => path === "/console" || path.startsWith("/console/"),
      async handle(req, res) {
        setConsoleHeaders(res);
        if (req.method !== "GET" && req.method !== "HEAD") {
          res.setHeader("Allow", "GET");
          return sendBody(res, 405, "text/plain; charset=utf-8", "method not allowed\n");
        }
        if (files === undefined) return sendBody(res, 503, "text/plain; charset=utf-8", "the console is not built: run npm run build\n");
        const path = (req.url ?? "").split("?", 1)[0] ?? "";
        const asset = /^\/console\/assets\/([a-z]+\.(?:js|css))$/.exec(path)?.[1];
        if (asset !== undefined) {
          const body = files.assets.get(asset);
          if (body === undefined) return sendBody(res, 404, "text/plain; charset=utf-8", "not found\n");
          return sendBody(res, 200, ASSETS[asset] ?? "application/octet-stream", body);
        }
        // Every other console path is a page of the single-page app.
        return sendBody(res, 200, "text/html; charset=utf-8", files.index);
      },
    },
  ];
}

async function signIn(
  deps: ConsoleRouteDeps,
  req: HttpRequest,
  res: HttpResponse,
  cookie: (value: string, maxAge: number) => string,
): Promise<void> {
  // Keyed as the callback limit is: behind a trusted proxy, the forwarded client (issue 20, item
  // 5: keyed on the proxy's address, one attacker locked every operator out).
  const retryAfter = deps.limiter.take(clientLimitKey(clientAddress(req.socket?.remoteAddress, req.headers, deps.trustedProxies)));
  if (retryAfter > 0) {
    res.setHeader("Retry-After", String(retryAfter));
    return sendJson(res, 429, { code: "resource_exhausted", message: "too many sign-in attempts" });
  }
  // Only JSON: a cross-site form cannot send it, so no other site can sign an operator in.
  if (!/^application\/json(;|$)/i.test(req.headers["content-type"] ?? "")) {
    return sendJson(res, 415, { code: "invalid_argument", message: "the body must be application/json" });
  }
  let key: unknown;
  try {
    key = (JSON.parse((await readBody(req, 8 * 1024)).toString("utf8")) as { key?: unknown }).key;
  } catch (error) {
    const tooLarge = error instanceof BodyTooLarge;
    return sendJson(res, tooLarge ? 413 : 400, { code: "invalid_argument", message: tooLarge ? "the body is too large" : "the body is not JSON" });
  }
  if (typeof key !== "string" || !/^[\x21-\x7e]{1,4096}$/.test(key)) {
    return sendJson(res, 400, { code: "invalid_argument", message: '"key" is required' });
  }
  const signedIn = await deps.sessions.signIn(key);
  if (signedIn === undefined) return sendJson(res, 401, { code: "unauthenticated", message: "invalid key" });
  res.setHeader("Set-Cookie", cookie(signedIn.cookie, deps.sessionTtlSeconds));
  return sendJson(res, 200, { csrfToken: signedIn.csrfToken, caller: describe(signedIn.caller), csrfHeader: CSRF_HEADER });
}

function describe(caller: Caller): { admin: boolean; organisationId: string; label: string } {
  return { admin: caller.kind === "admin", organisationId: caller.kind === "organisation" ? caller.organisationId : "", label: caller.label };
}

function headersOf(req: HttpRequest): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value === "string") headers.set(name, value);
  }
  return headers;
}

function sendJson(res: HttpResponse, status: number, body: unknown): void {
  sendBody(res, status, "application/json", JSON.stringify(body));
}

function loadFiles(distDir: string): { index: string; assets: Map<string, string> } | undefined {
  if (!existsSync(join(distDir, "index.html"))) return undefined;
  const assets = new Map<string, string>();
  for (const name of Object.keys(ASSETS)) {
    const path = join(distDir, "assets", name);
    if (existsSync(path)) assets.set(name, readFileSync(path, "utf8"));
  }
  return { index: readFileSync(join(distDir, "index.html"), "utf8"), assets };
}
