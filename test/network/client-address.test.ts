import { describe, expect, it } from "vitest";
import { clientAddress, clientLimitKey, parseTrustedProxies, TrustedProxies } from "../../src/network/client-address.js";

const proxies = new TrustedProxies(["10.0.0.0/8", "2001:db8:ffff::1"]);

describe("clientAddress", () => {
  it("is the peer when the peer is not a trusted proxy, whatever the headers say", () => {
    expect(clientAddress("198.51.100.7", { "x-forwarded-for": "203.0.113.1" }, proxies)).toBe("198.51.100.7");
    expect(clientAddress("198.51.100.7", { forwarded: "for=203.0.113.1" }, proxies)).toBe("198.51.100.7");
    expect(clientAddress("::ffff:198.51.100.7", {}, proxies)).toBe("198.51.100.7");
    expect(clientAddress("198.51.100.7", { "x-forwarded-for": "203.0.113.1" }, new TrustedProxies([]))).toBe("198.51.100.7");
  });

  it("is the rightmost untrusted X-Forwarded-For address behind trusted proxies", () => {
    // The client wrote 1.2.3.4 itself; the edge proxy appended the real peer; an inner proxy appended the edge.
    const headers = { "x-forwarded-for": "1.2.3.4, 203.0.113.9, 10.1.1.1" };
    expect(clientAddress("10.2.2.2", headers, proxies)).toBe("203.0.113.9");
    expect(clientAddress("10.2.2.2", { "x-forwarded-for": ["1.2.3.4", "203.0.113.9"] }, proxies)).toBe("203.0.113.9");
  });

  it("reads RFC 7239 Forwarded, quoted IPv6 with ports included", () => {
    const headers = { forwarded: 'for=1.2.3.4;proto=https, for="[2001:db8:1:2::5]:4711";by=10.0.0.1, for=10.3.3.3' };
    expect(clientAddress("10.2.2.2", headers, proxies)).toBe("2001:db8:1:2::5");
    expect(clientAddress("10.2.2.2", { forwarded: 'For="192.0.2.60:8080"' }, proxies)).toBe("192.0.2.60");
  });

  it("stops at the proxy that wrote an entry that is no address", () => {
    expect(clientAddress("10.2.2.2", { forwarded: "for=unknown" }, proxies)).toBe("10.2.2.2");
    expect(clientAddress("10.2.2.2", { "x-forwarded-for": "203.0.113.9, _hidden, 10.1.1.1" }, proxies)).toBe("10.1.1.1");
    expect(clientAddress("10.2.2.2", {}, proxies)).toBe("10.2.2.2");
  });
});

describe("clientLimitKey", () => {
  it("keys IPv6 clients by their /64 and IPv4 clients by their address", () => {
    expect(clientLimitKey("2001:db8:0:0:1::1")).toBe("2001:db8:0:0::/64");
    expect(clientLimitKey("2001:db8::ffff")).toBe(clientLimitKey("2001:0db8:0000:0000:abcd::1"));
    expect(clientLimitKey("2001:db8:0:1::1")).not.toBe(clientLimitKey("2001:db8::1"));
    expect(clientLimitKey("::ffff:1.2.3.4")).toBe("0:0:0:0::/64");
    expect(clientLimitKey("203.0.113.9")).toBe("203.0.113.9");
  });
});

describe("parseTrustedProxies", () => {
  it("takes addresses and CIDR ranges, and refuses host names", () => {
    expect(parseTrustedProxies(" 10.0.0.0/8, ::1 ")).toEqual(["10.0.0.0/8", "::1"]);
    expect(() => parseTrustedProxies("proxy.internal")).toThrow('"proxy.internal" is not an IP address or CIDR range');
    expect(() => parseTrustedProxies("10.0.0.0/33")).toThrow('"10.0.0.0/33" is not a CIDR range');
  });
});
