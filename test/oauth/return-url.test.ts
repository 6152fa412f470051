import { describe, expect, it } from "vitest";
import { isAllowedReturnUrl, requireAllowedReturnUrl, returnUrlWith } from "../../src/oauth/return-url.js";

const allowed = ["https://app.example.com/oauth", "https://admin.example.com/", "http://localhost:3000/cb/"];

describe("return URL allow-list", () => {
  it.each([
    ["https://app.example.com/oauth", true],
    ["https://app.example.com/oauth/done?x=1", true],
    ["https://app.example.com/oauthx", false],
    ["https://app.example.com/oauth/../admin", false],
    ["https://app.example.com/other", false],
    ["https://app.example.com:8443/oauth", false],
    ["http://app.example.com/oauth", false],
    ["https://evil.example/oauth", false],
    ["https://app.example.com.evil.example/oauth", false],
    ["https://admin.example.com/anything/at/all", true],
    ["http://localhost:3000/cb/x", true],
    ["http://localhost:3001/cb/x", false],
    // Bug: paths were compared still percent-encoded, so these passed as "below /oauth".
    ["https://app.example.com/oauth/..%2f..%2fevil", false],
    ["https://app.example.com/oauth/..%2F..%2Fevil", false],
    ["https://app.example.com/oauth/..;/evil", false],
    ["https://app.example.com/oauth//evil.example", false],
    ["https://app.example.com/oauth/%2e%2e/x", false],
    ["https://app.example.com/oauth/.%2e/admin", false],
    ["https://app.example.com/oauth/a%5c..%5cevil", false],
    ["https://app.example.com/oauth/%zz", false],
    ["https://app.example.com/oauth/caf%C3%A9", true],
    ["https://app.example.com/%6Fauth/done", true],
    ["https://admin.example.com//evil.example", false],
  ])("%s → %s", (url, expected) => {
    expect(isAllowedReturnUrl(new URL(url), allowed)).toBe(expected);
  });

  it("names the field when a return URL is refused", () => {
    expect(() => requireAllowedReturnUrl("https://evil.example/", allowed)).toThrow(
      '"return_url" is not in the organisation\'s allowed return URLs',
    );
    expect(() => requireAllowedReturnUrl("https://app.example.com/oauth", [])).toThrow("allowed return URLs");
  });

  it("refuses an ambiguous return_url path by name, even where the allow-list would cover it", () => {
    for (const url of ["https://admin.example.com/x/..%2f..%2fevil", "https://admin.example.com/..;/evil", "https://admin.example.com//evil.example"]) {
      expect(() => requireAllowedReturnUrl(url, allowed)).toThrow(
        `"return_url" has an ambiguous path (an encoded '/', '\\' or '.', a ';', or an empty segment)`,
      );
    }
    expect(requireAllowedReturnUrl("https://app.example.com/oauth/done/", allowed)).toBe("https://app.example.com/oauth/done/");
  });

  it("adds the outcome to the caller's own query", () => {
    expect(returnUrlWith("https://app.example.com/oauth?tab=1", { connection_id: "abc" })).toBe(
      "https://app.example.com/oauth?tab=1&connection_id=abc",
    );
    expect(returnUrlWith("https://app.example.com/oauth?error=old", { error: "access_denied" })).toBe(
      "https://app.example.com/oauth?error=access_denied",
    );
  });
});
