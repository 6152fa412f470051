/**
 * The path and query a proxied call sends, checked so that it can never leave the connection's API
 * base: no `..` or `.` segment (encoded or not: WHATWG URL parsing turns `%2e%2e` into `..`), no
 * `\` (some servers read it as `/`), no scheme or host (`//evil.example`, `https:`), and no control
 * character, encoded or not. An encoded `/` inside a segment (`%2F`, GitLab's project paths) is
 * kept as it is.
 */
export type ProxyTarget = { path: string; query: string } | { refusal: string };

const MAX_PATH_LENGTH = 8192;
/** Characters a raw request target may hold (RFC 3986 unreserved, sub-delims, `:@/%`). */
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/;

/** `rawPath` starts after the connection ID (with its leading `/`, or empty); `rawQuery` after `?`. */
export function proxyTarget(rawPath: string, rawQuery: string): ProxyTarget {
  const path = rawPath === "" ? "/" : rawPath;
  if (path.length > MAX_PATH_LENGTH || rawQuery.length > MAX_PATH_LENGTH) return { refusal: "the path or query is too long" };
  if (path.includes("\\") || /%5c/i.test(path)) return { refusal: 'the path must not contain "\\"' };
  if (!PATH_CHARS.test(path) || !QUERY_CHARS.test(rawQuery)) return { refusal: "the path or query has characters that must be percent-encoded" };
  if (/%(?:[01][0-9a-f]|7f)/i.test(path) || /%(?:[01][0-9a-f]|7f)/i.test(rawQuery)) return { refusal: "the path or query must not contain control characters" };
  if (/%(?![0-9a-f]{2})/i.test(path) || /%(?![0-9a-f]{2})/i.test(rawQuery)) return { refusal: "the path or query has a malformed percent-encoding" };
  if (path.startsWith("//")) return { refusal: "the path must not name a host" };
  const segments = path.slice(1).split("/");
  for (const segment of segments) {
    // A decoded segment holding an encoded "/" is split again: `..%2F` is still a way up.
    for (const part of decode(segment).split("/")) {
      if (part === ".." || part === ".") return { refusal: 'the path must not contain "." or ".." segments' };
    }
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(segments[0] ?? "")) return { refusal: "the path must not name a scheme" };
  return { path, query: rawQuery };
}

/**
 * The URL a proxied call goes to: the base plus the path, with the query. Checked again after
 * parsing: same origin, still under the base path.
 */
export function proxiedUrl(base: string, target: { path: string; query: string }): URL | undefined {
  const root = new URL(base);
  const url = new URL(`${base.replace(/\/$/, "")}${target.path}${target.query === "" ? "" : `?${target.query}`}`);
  const basePath = root.pathname.replace(/\/$/, "");
  if (url.origin !== root.origin || (url.pathname !== basePath && !url.pathname.startsWith(`${basePath}/`))) return undefined;
  return url;
}

/** Removes every parameter named `name` from a raw query (the token's, when it travels there). */
export function withoutParameter(rawQuery: string, name: string): string {
  if (rawQuery === "") return rawQuery;
  return rawQuery
    .split("&")
    .filter((pair) => decode(pair.split("=", 1)[0]!.replaceAll("+", " ")) !== name)
    .join("&");
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
