import { describe, expect, it } from "vitest";
import {
  clientSecretContext,
  codeVerifierContext,
  connectionSecretContext,
  previousClientSecretContext,
  privateKeyContext,
  webhookSecretContext,
} from "../../src/crypto/secret-contexts.js";

// Every stored ciphertext is bound to one of these strings: a change makes stored secrets unreadable.
describe("secret contexts", () => {
  it("are the strings stored ciphertexts were sealed with", () => {
    expect(clientSecretContext("c1")).toBe("credentials/c1/client_secret");
    expect(connectionSecretContext("k1", "refresh_token")).toBe("connections/k1/refresh_token");
    expect(webhookSecretContext("acme")).toBe("organisations/acme/webhook_secret");
    expect(previousClientSecretContext("c1")).toBe("credentials/c1/previous_client_secret");
    expect(privateKeyContext("c1", "kid-1")).toBe("credentials/c1/private_keys/kid-1");
    expect(codeVerifierContext("h1")).toBe("oauth_states/h1/code_verifier");
  });
});
