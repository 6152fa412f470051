import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/errors.js";
import {
  type AuthorizationRequestInput,
  buildAuthorizeUrl,
  planAuthorizationRequest,
} from "../../src/oauth/authorize-url.js";

const base: AuthorizationRequestInput = {
  authorizeUrl: "https://provider.example/authorize",
  scopes: [],
  disableOfflineAccess: false,
  prompt: undefined,
  additionalParams: "",
  allowHttp: false,
};

const secrets = {
  clientId: "client-1",
  redirectUri: "https://broker.example/oauth2/callback",
  state: "STATE",
  codeChallenge: "CHALLENGE" as string | undefined,
  nonce: "NONCE" as string | undefined,
};

function build(input: Partial<AuthorizationRequestInput>, overrides: Partial<typeof secrets> = {}): URL {
  return new URL(buildAuthorizeUrl(planAuthorizationRequest({ ...base, ...input }), { ...secrets, ...overrides }));
}

function rejects(input: Partial<AuthorizationRequestInput>): InvalidInputError {
  try {
    planAuthorizationRequest({ ...base, ...input });
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  throw new Error("expected an InvalidInputError");
}

describe("rule 3: authorize_url", () => {
  it("keeps the URL's own query parameters, first", () => {
    const url = build({ authorizeUrl: "https://provider.example/oauth/authorize?tenant=acme&x=1" });
    expect([...url.searchParams.keys()].slice(0, 3)).toEqual(["tenant", "x", "response_type"]);
    expect(url.searchParams.get("tenant")).toBe("acme");
    expect(url.origin + url.pathname).toBe("https://provider.example/oauth/authorize");
  });

  it.each([
    ["", '"authorize_url" is required'],
    ["/authorize", '"authorize_url" must be an absolute URL'],
    ["ftp://provider.example/a", '"authorize_url" must be an https URL'],
    ["javascript:alert(1)", '"authorize_url" must be an https URL'],
    ["http://provider.example/a", '"authorize_url" must be an https URL (http is allowed only for loopback hosts)'],
    ["https://provider.example/a#frag", '"authorize_url" must not contain a fragment'],
    ["https://provider.example/a#", '"authorize_url" must not contain a fragment'],
    ["https://user:pw@provider.example/a", '"authorize_url" must not contain a user name or password'],
    ["https://user@provider.example/a", '"authorize_url" must not contain a user name or password'],
    ["https://provider.example/a?state=x", '"authorize_url" must not set "state"'],
    ["https://provider.example/a?client_id=x", '"authorize_url" must not set "client_id"'],
    ["https://provider.example/a?response_mode=form_post", '"authorize_url" must not set "response_mode"'],
    ["https://provider.example/a?x=1&x=2", '"authorize_url" must not repeat "x"'],
    ["https://provider.example/a\n", '"authorize_url" must not contain control characters'],
  ])("rejects %j", (authorizeUrl, message) => {
    const error = rejects({ authorizeUrl });
    expect(error.message).toBe(message);
    expect(error.field).toBe("authorize_url");
  });

  it("rejects an authorize_url over 2048 characters", () => {
    expect(rejects({ authorizeUrl: `https://provider.example/${"a".repeat(2048)}` }).message).toBe(
      '"authorize_url" must be at most 2048 characters',
    );
  });

  it("accepts http for loopback hosts only, unless allowed by configuration", () => {
    for (const host of ["localhost", "127.0.0.1", "127.9.9.9", "[::1]", "idp.localhost"]) {
      expect(build({ authorizeUrl: `http://${host}:9000/auth` }).protocol).toBe("http:");
    }
    expect(rejects({ authorizeUrl: "http://10.0.0.1/auth" }).field).toBe("authorize_url");
    expect(build({ authorizeUrl: "http://idp.internal/auth", allowHttp: true }).host).toBe("idp.internal");
  });
});

describe("rule 4: the parameters the broker sets", () => {
  it("sets them in order, then the additional params", () => {
    const url = build({ scopes: ["openid", "email"], additionalParams: "access_type=offline&hd=example.com" });
    expect([...url.searchParams]).toEqual([
      ["response_type", "code"],
      ["client_id", "client-1"],
      ["redirect_uri", "https://broker.example/oauth2/callback"],
      ["state", "STATE"],
      ["scope", "openid email offline_access"],
      ["prompt", "login"],
      ["code_challenge", "CHALLENGE"],
      ["code_challenge_method", "S256"],
      ["nonce", "NONCE"],
      ["access_type", "offline"],
      ["hd", "example.com"],
    ]);
  });

  it("omits PKCE when the credential disables it", () => {
    const url = build({}, { codeChallenge: undefined });
    expect(url.searchParams.has("code_challenge")).toBe(false);
    expect(url.searchParams.has("code_challenge_method")).toBe(false);
  });

  it("sends a nonce only when openid is requested", () => {
    expect(planAuthorizationRequest({ ...base, scopes: ["email"] }).needsNonce).toBe(false);
    expect(build({ scopes: ["email"] }, { nonce: undefined }).searchParams.has("nonce")).toBe(false);
    expect(planAuthorizationRequest({ ...base, scopes: ["openid"] }).needsNonce).toBe(true);
  });

  it("percent-encodes every value so none can inject a parameter", () => {
    const url = build({}, { clientId: "a&state=evil" });
    expect(url.searchParams.getAll("state")).toEqual(["STATE"]);
    expect(url.searchParams.get("client_id")).toBe("a&state=evil");
  });
});

describe("rule 5: scope", () => {
  it("keeps order, drops duplicates and appends offline_access", () => {
    const url = build({ scopes: ["b", "a", "b", "offline_access", "a"] });
    expect(url.searchParams.get("scope")).toBe("b a offline_access");
  });

  it("leaves offline_access out when disabled", () => {
    expect(build({ scopes: ["read"], disableOfflineAccess: true }).searchParams.get("scope")).toBe("read");
  });

  it("sends no scope parameter when the list ends up empty", () => {
    expect(build({ scopes: [], disableOfflineAccess: true }).searchParams.has("scope")).toBe(false);
  });

  it("adds offline_access alone to an empty list", () => {
    expect(build({ scopes: [] }).searchParams.get("scope")).toBe("offline_access");
  });

  it("keeps provider scopes that are URLs", () => {
    const scope = "https://www.googleapis.com/auth/drive.readonly";
    expect(build({ scopes: [scope] }).searchParams.get("scope")).toBe(`${scope} offline_access`);
  });

  it.each([
    [["ok", ""], "scopes[1]", '"scopes[1]" must not be empty'],
    [["two words"], "scopes[0]", '"scopes[0]" must be a scope token (printable ASCII without space or " or \\)'],
    [['say"hi'], "scopes[0]", '"scopes[0]" must be a scope token (printable ASCII without space or " or \\)'],
    [["back\\slash"], "scopes[0]", '"scopes[0]" must be a scope token (printable ASCII without space or " or \\)'],
    [["café"], "scopes[0]", '"scopes[0]" must be a scope token (printable ASCII without space or " or \\)'],
  ])("rejects %j", (scopes, field, message) => {
    const error = rejects({ scopes });
    expect(error.field).toBe(field);
    expect(error.message).toBe(message);
  });
});

describe("rule 9: length limits", () => {
  it.each([
    ["a scope over 256 characters", { scopes: ["x".repeat(257)] }, '"scopes[0]" must be at most 256 characters'],
    ["over 100 scopes", { scopes: Array.from({ length: 101 }, (_, i) => `s${i}`) }, '"scopes" must have at most 100 entries'],
    ["a prompt over 256 characters", { prompt: "x".repeat(257) }, '"prompt" must be at most 256 characters'],
    [
      "additional_params over 4 KiB",
      { additionalParams: `a=${"x".repeat(4095)}` },
      '"additional_params" must be at most 4096 characters',
    ],
  ])("rejects %s", (_label, input: Partial<AuthorizationRequestInput>, message) => {
    expect(rejects(input).message).toBe(message);
  });
});

describe("rule 6: prompt", () => {
  it("defaults to login", () => {
    expect(build({ prompt: undefined }).searchParams.get("prompt")).toBe("login");
  });

  it("is not sent by default when additional_params has approval_prompt", () => {
    const url = build({ prompt: undefined, additionalParams: "approval_prompt=force" });
    expect(url.searchParams.has("prompt")).toBe(false);
    expect(url.searchParams.get("approval_prompt")).toBe("force");
  });

  it("is not sent when set to the empty string", () => {
    expect(build({ prompt: "" }).searchParams.has("prompt")).toBe(false);
  });

  it("joins values given with spaces or + into one space-delimited value", () => {
    expect(build({ prompt: "login+consent" }).searchParams.get("prompt")).toBe("login consent");
    expect(build({ prompt: "consent  select_account" }).searchParams.get("prompt")).toBe("consent select_account");
    expect(build({ prompt: "consent+login consent" }).searchParams.get("prompt")).toBe("consent login");
  });

  it("allows unknown provider-specific values", () => {
    expect(build({ prompt: "create" }).searchParams.get("prompt")).toBe("create");
  });

  it("allows none on its own", () => {
    expect(build({ prompt: "none" }).searchParams.get("prompt")).toBe("none");
  });

  it.each([
    ["none login", '"prompt" must not combine "none" with other values'],
    ["none+consent", '"prompt" must not combine "none" with other values'],
    ["log\tin", '"prompt" must not contain control characters'],
    ["login,consent", '"prompt" values must be tokens of A-Z a-z 0-9 _ -'],
    ["lo%67in", '"prompt" values must be tokens of A-Z a-z 0-9 _ -'],
  ])("rejects %j", (prompt, message) => {
    const error = rejects({ prompt });
    expect(error.field).toBe("prompt");
    expect(error.message).toBe(message);
  });

  it("rejects an explicit prompt together with approval_prompt, which Google refuses", () => {
    expect(rejects({ prompt: "consent", additionalParams: "approval_prompt=force" }).message).toBe(
      '"prompt" must not be set together with "approval_prompt" in "additional_params"',
    );
  });
});

describe("rule 7: additional_params", () => {
  it("decodes form encoding and re-encodes each key exactly once", () => {
    const url = build({ additionalParams: "login_hint=a%2Bb%40example.com&display=page+popup&flag" });
    expect(url.searchParams.get("login_hint")).toBe("a+b@example.com");
    expect(url.searchParams.get("display")).toBe("page popup");
    expect(url.searchParams.get("flag")).toBe("");
    for (const key of new Set(url.searchParams.keys())) expect(url.searchParams.getAll(key)).toHaveLength(1);
  });

  it.each([
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "prompt",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "response_mode",
    "request",
    "request_uri",
  ])("rejects the reserved key %s", (key) => {
    expect(rejects({ additionalParams: `a=1&${key}=x` }).message).toBe(`"additional_params" must not set "${key}"`);
  });

  it("rejects a reserved key even when it is percent-encoded", () => {
    expect(rejects({ additionalParams: "st%61te=x" }).message).toBe('"additional_params" must not set "state"');
  });

  it("rejects a key already in authorize_url", () => {
    const error = rejects({ authorizeUrl: "https://provider.example/a?tenant=1", additionalParams: "tenant=2" });
    expect(error.message).toBe('"additional_params" must not repeat "tenant" from "authorize_url"');
  });

  it("rejects a key given twice", () => {
    expect(rejects({ additionalParams: "hd=a&hd=b" }).message).toBe('"additional_params" must not repeat "hd"');
  });

  it.each([
    ["a=%zz", '"additional_params" has a malformed percent-encoding'],
    ["a=100%", '"additional_params" has a malformed percent-encoding'],
    ["a=%C3", '"additional_params" has a percent-encoding that is not UTF-8'],
    ["=x", '"additional_params" must not contain an empty key'],
    ["a=1&&b=2", '"additional_params" must not contain an empty key'],
    ["a%0A=1", '"additional_params" keys must not contain control characters'],
  ])("rejects malformed %j", (additionalParams, message) => {
    const error = rejects({ additionalParams });
    expect(error.field).toBe("additional_params");
    expect(error.message).toBe(message);
  });
});
