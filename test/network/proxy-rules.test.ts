import { describe, expect, it } from "vitest";
import { forwardedRequestHeaders, headerBytes, headerRefusal, returnedResponseHeaders } from "../../src/network/proxy-headers.js";
import { proxiedUrl, proxyTarget, withoutParameter } from "../../src/network/proxy-path.js";
import { CallSlots, parseRetryAfter, RetryAfterMemory } from "../../src/network/retry-after.js";

describe("proxyTarget", () => {
  it.each([
    ["", "", { path: "/", query: "" }],
    ["/v1/users", "page=2", { path: "/v1/users", query: "page=2" }],
    ["/projects/group%2Fproject/issues", "", { path: "/projects/group%2Fproject/issues", query: "" }],
    ["/files/a..b/c.txt", "", { path: "/files/a..b/c.txt", query: "" }],
    ["/users/me@example.com:x", "", { path: "/users/me@example.com:x", query: "" }],
  ])("keeps %s as it is", (path, query, expected) => {
    expect(proxyTarget(path, query)).toEqual(expected);
  });

  it.each([
    ["/a/../b", "", 'the path must not contain "." or ".." segments'],
    ["/a/%2E%2E", "", 'the path must not contain "." or ".." segments'],
    ["/a/.%2e/b", "", 'the path must not contain "." or ".." segments'],
    ["/a/x%2F..%2Fy", "", 'the path must not contain "." or ".." segments'],
    ["/a\\..\\b", "", 'the path must not contain "\\"'],
    ["/a%5C", "", 'the path must not contain "\\"'],
    ["//evil.example", "", "the path must not name a host"],
    ["/javascript:alert", "", "the path must not name a scheme"],
    ["/a b", "", "the path or query has characters that must be percent-encoded"],
    ["/a", "x=#", "the path or query has characters that must be percent-encoded"],
    ["/a%0A", "", "the path or query must not contain control characters"],
    ["/a", "x=%0d%0a", "the path or query must not contain control characters"],
    ["/a%G1", "", "the path or query has a malformed percent-encoding"],
  ])("refuses %s?%s", (path, query, refusal) => {
    expect(proxyTarget(path, query)).toEqual({ refusal });
  });

  it("proxiedUrl stays under the base path and origin", () => {
    expect(proxiedUrl("https://api.example.com/v1", { path: "/users", query: "a=1" })?.href).toBe("https://api.example.com/v1/users?a=1");
    expect(proxiedUrl("https://api.example.com/v1", { path: "/", query: "" })?.href).toBe("https://api.example.com/v1/");
    expect(proxiedUrl("https://api.example.com/v1", { path: "/../admin", query: "" })).toBeUndefined();
  });

  it("withoutParameter drops every instance of the token's name, encoded or not", () => {
    expect(withoutParameter("a=1&access_token=x&access%5Ftoken=y&b=2", "access_token")).toBe("a=1&b=2");
    expect(withoutParameter("", "access_token")).toBe("");
  });
});

describe("proxy headers", () => {
  it("drops the caller's credentials, Host, hop-by-hop, Connection-named and x-broker-* headers; adds required ones unless set; the token last", () => {
    const forwarded = forwardedRequestHeaders(
      [
        ["Authorization", "Bearer broker-key"],
        ["Cookie", "a=b"],
        ["Host", "broker"],
        ["Connection", "keep-alive, X-Private"],
        ["X-Private", "p"],
        ["Transfer-Encoding", "chunked"],
        ["X-Broker-Retry", "2"],
        ["Accept", "application/json"],
        ["Notion-Version", "2025-01-01"],
        ["X-Api-Key", "caller-chosen"],
      ],
      { "Notion-Version": "2022-06-28", "X-Required": "yes" },
      { name: "X-Api-Key", value: "the-token" },
    );
    expect(forwarded).toEqual([
      ["Accept", "application/json"],
      ["Notion-Version", "2025-01-01"],
      ["X-Required", "yes"],
      ["X-Api-Key", "the-token"],
    ]);
  });

  it("drops Set-Cookie and hop-by-hop headers from the answer", () => {
    expect(
      returnedResponseHeaders([
        ["set-cookie", "a=b"],
        ["connection", "x-secret"],
        ["x-secret", "s"],
        ["keep-alive", "timeout=5"],
        ["content-type", "application/json"],
        ["retry-after", "10"],
      ]),
    ).toEqual([
      ["content-type", "application/json"],
      ["retry-after", "10"],
    ]);
  });

  it("refuses control characters and bad names; counts header bytes as HTTP/2 does", () => {
    expect(headerRefusal("X-A", "one\r\nX-Injected: two")).toBe('header "X-A" has control characters');
    expect(headerRefusal("X A", "v")).toBe('header name "X A" is not valid');
    expect(headerRefusal("X-A", "fine\tvalue")).toBeUndefined();
    expect(headerBytes([["ab", "cd"]])).toBe(36);
  });
});

describe("Retry-After", () => {
  it("reads seconds and HTTP dates (RFC 9110 §10.2.3)", () => {
    expect(parseRetryAfter("120")).toBe(120_000);
    expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", Date.parse("Wed, 21 Oct 2015 07:27:00 GMT"))).toBe(60_000);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });

  it("remembers a wait per key until it has passed, capped and bounded in entries", () => {
    const memory = new RetryAfterMemory(2, 10_000);
    memory.remember("c1 /a", 5_000, 0);
    expect(memory.waitFor("c1 /a", 1_000)).toBe(4_000);
    expect(memory.waitFor("c1 /b", 1_000)).toBe(0);
    expect(memory.waitFor("c1 /a", 5_000)).toBe(0);
    memory.remember("c1 /a", 99_000_000, 0);
    expect(memory.waitFor("c1 /a", 0)).toBe(10_000);
    memory.remember("c1 /b", 1_000, 0);
    memory.remember("c1 /c", 1_000, 0);
    expect(memory.waitFor("c1 /a", 0)).toBe(0);
  });

  it("CallSlots allows at most its ceiling per key", () => {
    const slots = new CallSlots(2);
    expect([slots.acquire("o"), slots.acquire("o"), slots.acquire("o"), slots.acquire("p")]).toEqual([true, true, false, true]);
    slots.release("o");
    expect(slots.acquire("o")).toBe(true);
  });
});
