import { describe, expect, it } from "vitest";
import { ProviderCallError } from "../../src/network/provider-call-error.js";
import { MAX_EXPIRES_IN_SECONDS, parseTokenResponse } from "../../src/oauth/token-response.js";

const JSON_TYPE = "application/json; charset=utf-8";

function fails(status: number, type: string | null, body: string): ProviderCallError {
  try {
    parseTokenResponse(status, type, body);
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderCallError);
    return error as ProviderCallError;
  }
  throw new Error("expected a ProviderCallError");
}

describe("parseTokenResponse", () => {
  it("reads a standard JSON response and keeps the extra fields", () => {
    const tokens = parseTokenResponse(
      200,
      JSON_TYPE,
      JSON.stringify({
        access_token: "at",
        token_type: "Bearer",
        expires_in: 3600,
        refresh_token: "rt",
        id_token: "a.b.c",
        scope: "openid email",
        instance_url: "https://eu1.example.com",
      }),
    );
    expect(tokens).toEqual({
      accessToken: "at",
      tokenType: "bearer",
      expiresIn: 3600,
      refreshToken: "rt",
      idToken: "a.b.c",
      scopes: ["openid", "email"],
      extra: { instance_url: "https://eu1.example.com" },
      metadata: {},
    });
  });

  it.each(["bearer", "Bearer", "BEARER", "bEaReR"])("accepts token_type %s", (tokenType) => {
    expect(parseTokenResponse(200, JSON_TYPE, JSON.stringify({ access_token: "a", token_type: tokenType })).tokenType).toBe("bearer");
  });

  it("caps expires_in: 1e300 was stored as an invalid date that every GetAccessToken refreshed", () => {
    const parse = (expiresIn: string) => parseTokenResponse(200, JSON_TYPE, `{"access_token":"a","token_type":"bearer","expires_in":${expiresIn}}`).expiresIn;
    expect(parse("1e300")).toBe(MAX_EXPIRES_IN_SECONDS);
    expect(parse('"99999999999999999999"')).toBe(MAX_EXPIRES_IN_SECONDS);
    expect(parse("2147483647")).toBe(MAX_EXPIRES_IN_SECONDS);
    expect(parse(String(MAX_EXPIRES_IN_SECONDS))).toBe(315_360_000);
    expect(parse("59.9")).toBe(59);
    expect(() => parse("1e400")).toThrow('"expires_in" is not a number of seconds'); // JSON.parse gives Infinity
    expect(() => parse(`"${"9".repeat(400)}"`)).toThrow('"expires_in" is not a number of seconds');
  });

  it("reads expires_in 0 as no expiry, not as expired (Mailchimp's never-expiring tokens)", () => {
    expect(parseTokenResponse(200, JSON_TYPE, '{"access_token":"a","token_type":"bearer","expires_in":0}').expiresIn).toBeUndefined();
    expect(parseTokenResponse(200, JSON_TYPE, '{"access_token":"a","token_type":"bearer","expires_in":"0"}').expiresIn).toBeUndefined();
  });

  it("accepts a missing expires_in, and one sent as a string", () => {
    expect(parseTokenResponse(200, JSON_TYPE, '{"access_token":"a","token_type":"bearer"}').expiresIn).toBeUndefined();
    expect(parseTokenResponse(200, JSON_TYPE, '{"access_token":"a","token_type":"bearer","expires_in":"7200"}').expiresIn).toBe(7200);
  });

  it("accepts scope separated by spaces or commas", () => {
    const read = (scope: string) => parseTokenResponse(200, JSON_TYPE, JSON.stringify({ access_token: "a", token_type: "bearer", scope })).scopes;
    expect(read("repo user")).toEqual(["repo", "user"]);
    expect(read("repo,user")).toEqual(["repo", "user"]);
    expect(read("repo, user,gist")).toEqual(["repo", "user", "gist"]);
    expect(parseTokenResponse(200, JSON_TYPE, '{"access_token":"a","token_type":"bearer"}').scopes).toBeUndefined();
  });

  it("reads a form-encoded body from a provider that ignores Accept: application/json (GitHub)", () => {
    const tokens = parseTokenResponse(
      200,
      "application/x-www-form-urlencoded; charset=utf-8",
      "access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&token_type=bearer",
    );
    expect(tokens).toMatchObject({ accessToken: "gho_16C7e42F292c6912E7710c838347Ae178B4a", tokenType: "bearer", scopes: ["repo", "gist"] });
  });

  it("reads JSON sent with a wrong content type", () => {
    expect(parseTokenResponse(200, "text/html", '{"access_token":"a","token_type":"bearer"}').accessToken).toBe("a");
  });

  it("reports the provider's OAuth error, even with HTTP 200 (GitHub)", () => {
    expect(fails(400, JSON_TYPE, '{"error":"invalid_grant","error_description":"bad code"}').oauthError).toBe("invalid_grant");
    expect(fails(200, "application/x-www-form-urlencoded", "error=bad_verification_code&error_description=The+code+is+wrong").oauthError).toBe(
      "bad_verification_code",
    );
  });

  it.each([
    ["HTTP 500 with JSON", 500, JSON_TYPE, "{}", "HTTP 500"],
    ["HTTP 500 with HTML", 500, "text/html", "<html><body>Oops</body></html>", "HTTP 500 with a body that is neither JSON nor form-encoded"],
    ["an HTML page with 200", 200, "text/html", "<!doctype html><p>login</p>", "HTTP 200 with a body that is neither JSON nor form-encoded"],
    ["invalid JSON", 200, JSON_TYPE, '{"access_token": ', "HTTP 200 with a body that is neither JSON nor form-encoded"],
    ["a JSON array", 200, JSON_TYPE, "[1]", "HTTP 200 with a body that is neither JSON nor form-encoded"],
    ["no access_token", 200, JSON_TYPE, '{"token_type":"bearer"}', 'no "access_token"'],
    ["no token_type", 200, JSON_TYPE, '{"access_token":"a"}', 'no "token_type"'],
    ["a negative expires_in", 200, JSON_TYPE, '{"access_token":"a","token_type":"bearer","expires_in":-5}', '"expires_in" is not a number of seconds'],
    ["a non-numeric expires_in", 200, JSON_TYPE, '{"access_token":"a","token_type":"bearer","expires_in":"soon"}', '"expires_in" is not a number of seconds'],
    ["a numeric scope", 200, JSON_TYPE, '{"access_token":"a","token_type":"bearer","scope":5}', '"scope" is not a string'],
  ])("refuses %s", (_label, status, type, body, message) => {
    expect(fails(status, type, body).message).toBe(message);
  });

  it("never puts the token values in its errors", () => {
    const error = fails(200, JSON_TYPE, '{"access_token":"secret-token-value","token_type":"bearer","expires_in":"x"}');
    expect(error.message).not.toContain("secret-token-value");
  });
});
