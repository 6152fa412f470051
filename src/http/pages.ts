import { hash } from "node:crypto";
import type { HttpResponse } from "./http-types.js";

const STYLE =
  "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1b1b1b}" +
  "h1{font-size:1.4rem}p{margin:.5rem 0}";
const STYLE_HASH = hash("sha256", STYLE, "base64");

/**
 * Headers on every browser response: nothing is cached, no Referer carries the code or state to
 * another site, and the strict CSP allows only our one inline stylesheet: no scripts, images,
 * frames, forms or external assets.
 */
export function setBrowserSecurityHeaders(
  res: HttpResponse,
  csp = `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
): void {
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("Pragma", "no-cache");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("X-Frame-Options", "DENY");
  res.setHeader("Content-Security-Policy", csp);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A small plain page. `title` and `lines` are text: they are escaped here. */
export function sendPage(res: HttpResponse, status: number, title: string, lines: readonly string[]): void {
  const body = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
${lines.map((line) => `<p>${escapeHtml(line)}</p>`).join("\n")}
</main>
</body>
</html>
`;
  setBrowserSecurityHeaders(res);
  res.setHeader("Content-Type", "text/html; charset=utf-8");
  res.writeHead(status);
  res.end(body);
}

/** 303 See Other: the browser follows with a GET, whatever brought it here. */
export function sendRedirect(res: HttpResponse, location: string): void {
  setBrowserSecurityHeaders(res);
  res.setHeader("Location", location);
  res.writeHead(303);
  res.end();
}
