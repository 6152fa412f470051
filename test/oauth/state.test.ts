import * as oauth from "oauth4webapi";
import { describe, expect, it } from "vitest";
import { generateAttemptSecrets, hashState, pkceS256Challenge } from "../../src/oauth/state.js";

describe("pkceS256Challenge", () => {
  it("gives RFC 7636 Appendix B's challenge for its verifier", () => {
    expect(pkceS256Challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).toBe("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
  });

  it("agrees with oauth4webapi's calculatePKCECodeChallenge on random verifiers", async () => {
    for (let i = 0; i < 50; i++) {
      const verifier = oauth.generateRandomCodeVerifier();
      expect(pkceS256Challenge(verifier)).toBe(await oauth.calculatePKCECodeChallenge(verifier));
    }
  });
});

describe("generateAttemptSecrets", () => {
  it("draws a fresh 256-bit state and verifier each time, and stores only the state's hash", () => {
    const a = generateAttemptSecrets({ pkce: true, nonce: true });
    const b = generateAttemptSecrets({ pkce: true, nonce: true });
    // Its creation window (base 36), then 32 random bytes (base64url).
    expect(a.state).toMatch(/^[1-9a-z][0-9a-z]*\.[A-Za-z0-9_-]{43}$/);
    expect(a.codeVerifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.state).not.toBe(b.state);
    expect(a.codeVerifier).not.toBe(b.codeVerifier);
    expect(a.stateHash).toBe(hashState(a.state));
    expect(a.stateHash).not.toContain(a.state);
    expect(a.codeChallenge).toBe(pkceS256Challenge(a.codeVerifier!));
  });

  it("leaves out the verifier and nonce when they are not wanted", () => {
    const secrets = generateAttemptSecrets({ pkce: false, nonce: false });
    expect(secrets.codeVerifier).toBeUndefined();
    expect(secrets.codeChallenge).toBeUndefined();
    expect(secrets.nonce).toBeUndefined();
  });
});
