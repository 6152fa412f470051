import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { isSpecialAddress, OutboundPolicy } from "../../src/network/address-policy.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectError } from "../support/errors.js";
import { ScriptedProvider } from "../support/scripted-provider.js";
import { expectUnchanged } from "./support.js";

/** Outbound requests to internal addresses, with no allow-list (as in production). */
let broker: TestBroker;
let provider: ScriptedProvider;

beforeAll(async () => {
  provider = await ScriptedProvider.start();
  broker = await startTestBroker({ BROKER_OUTBOUND_ALLOWLIST: "" });
});
afterAll(async () => {
  await broker.close();
  await provider.close();
});

const credential = (tokenUrl: string, extra: Record<string, unknown> = {}) =>
  broker.connect(CredentialService).createCredential({
    credential: { organisationId: "acme", name: "n", clientId: "client-1", clientSecret: "s", tokenUrl, ...extra },
  });

const PRIVATE = "is refused - internal addresses (private or loopback or link-local) are refused";

describe("credential-level host parameters (issue 20: Okta's domain took metadata.google.internal)", () => {
  const okta = (domain: string, organisationId = "acme") =>
    broker.connect(CredentialService).createCredential({
      credential: { organisationId, name: "Okta", clientId: "client-1", clientSecret: "s", provider: "okta", providerConfig: { domain } },
    });
  const REFUSED =
    '"credential.provider_config.domain" is refused - special-use and internal host names (localhost, .local, .internal, .localdomain) are allowed only when BROKER_OUTBOUND_ALLOWLIST names them';

  it.each(["metadata.google.internal", "localhost.localdomain", "foo.localhost", "printer.local", "idp.internal", "router.home.arpa", "a.invalid"])(
    "regression: refuses %s at creation and at update, changing nothing",
    async (domain) => {
      const { credential: created } = await okta("dev-1.okta.com");
      await expectUnchanged(broker.database.db, async () => {
        expect(await connectError(okta(domain))).toMatchObject({ code: Code.InvalidArgument, rawMessage: REFUSED });
        const update = broker.connect(CredentialService).updateCredential({
          // A changed host needs the secret again (it was stored for the old host).
          credential: { id: created!.id, organisationId: "acme", providerConfig: { domain }, clientSecret: "s2" },
          updateMask: { paths: ["provider_config", "client_secret"] },
        });
        expect(await connectError(update)).toMatchObject({ code: Code.InvalidArgument, rawMessage: REFUSED });
      });
    },
  );

  it("accepts such a host when BROKER_OUTBOUND_ALLOWLIST names it", async () => {
    const allowing = await startTestBroker({ BROKER_OUTBOUND_ALLOWLIST: "idp.internal" });
    try {
      const { credential } = await allowing.connect(CredentialService).createCredential({
        credential: { organisationId: "acme", name: "Okta", clientId: "client-1", clientSecret: "s", provider: "okta", providerConfig: { domain: "idp.internal" } },
      });
      expect(credential?.providerConfig).toEqual({ domain: "idp.internal" });
      expect((await connectError(okta("other.internal"))).code).toBe(Code.InvalidArgument);
    } finally {
      await allowing.close();
    }
  });
});

describe("token_url and other outbound URLs", () => {
  it.each([
    ["loopback", "https://127.0.0.1/token", `"credential.token_url" ${PRIVATE}`],
    ["loopback, plain http", "http://127.0.0.1:8080/token", '"credential.token_url" is refused - plain http is allowed only to hosts on BROKER_OUTBOUND_ALLOWLIST'],
    ["the cloud metadata address", "https://169.254.169.254/latest/meta-data/", `"credential.token_url" ${PRIVATE}`],
    ["IPv6 loopback", "https://[::1]/token", `"credential.token_url" ${PRIVATE}`],
    ["IPv4-mapped IPv6 loopback", "https://[::ffff:127.0.0.1]/token", `"credential.token_url" ${PRIVATE}`],
    ["a private network", "https://10.0.0.7/token", `"credential.token_url" ${PRIVATE}`],
    ["a decimal-encoded loopback", "https://2130706433/token", `"credential.token_url" ${PRIVATE}`],
    ["a zero address", "https://0.0.0.0/token", `"credential.token_url" ${PRIVATE}`],
  ])("refuses %s at creation", async (_label, tokenUrl, message) => {
    await expectUnchanged(broker.database.db, async () => {
      expect(await connectError(credential(tokenUrl))).toMatchObject({ code: Code.InvalidArgument, rawMessage: message });
    });
  });

  it("refuses the same for revocation_url, issuer and webhook_url", async () => {
    await expectUnchanged(broker.database.db, async () => {
      expect((await connectError(credential("https://idp.example/token", { revocationUrl: "https://169.254.169.254/" }))).rawMessage).toBe(
        `"credential.revocation_url" ${PRIVATE}`,
      );
      expect((await connectError(credential("https://idp.example/token", { issuer: "https://[fd00::1]" }))).rawMessage).toBe(`"credential.issuer" ${PRIVATE}`);
      const webhook = await connectError(
        broker.connect(OrganisationService).updateOrganisationSettings({
          settings: { organisationId: "acme", webhookUrl: "https://192.168.1.1/hook" },
          updateMask: { paths: ["webhook_url"] },
        }),
      );
      expect(webhook.rawMessage).toBe(`"settings.webhook_url" ${PRIVATE}`);
    });
  });

  it("refuses a host name that resolves to a private address, when it is called", async () => {
    // Accepted when stored (DNS may change), refused at connect time: "localhost" is 127.0.0.1.
    const port = new URL(provider.tokenUrl).port;
    const { credential: created } = await credential(`https://localhost:${port}/token`);
    const { url } = await broker.connect(ConnectionService).initialiseOAuth2Connection({
      organisationId: "acme",
      connectorId: "c",
      credential: { id: created!.id, organisationId: "acme" },
      authorizeUrl: "https://idp.example/authorize",
      clientId: "client-1",
    });
    const state = new URL(url).searchParams.get("state")!;
    provider.requests.length = 0;
    const page = await fetch(`${broker.httpUrl}/oauth2/callback?state=${state}&code=c`);
    expect(page.status).toBe(502);
    expect(provider.requests).toHaveLength(0);
    expect(JSON.stringify(broker.logs)).toContain("refused: localhost resolves to a private or special address");
    expect(await broker.database.db.collection("connections").countDocuments()).toBe(0);
  });
});

describe("the address policy", () => {
  it.each([
    ["127.0.0.1", true],
    ["10.1.2.3", true],
    ["172.16.0.1", true],
    ["172.32.0.1", false],
    ["192.168.0.1", true],
    ["169.254.169.254", true],
    ["100.64.0.1", true],
    ["0.0.0.0", true],
    ["224.0.0.1", true],
    ["8.8.8.8", false],
    ["::1", true],
    ["::", true],
    ["fe80::1", true],
    ["fd12:3456::1", true],
    ["::ffff:10.0.0.1", true],
    ["64:ff9b::a00:1", true],
    // The SSRF deny list lacked these: each reaches an IPv4 or internal host in IPv6 dress.
    ["::7f00:1", true],
    ["::127.0.0.1", true],
    ["::ffff:8.8.8.8", true],
    ["::ffff:7f00:1", true],
    ["64:ff9b:1::a00:1", true],
    ["2002:a00:1::1", true],
    ["fec0::1", true],
    ["2606:4700::1111", false],
  ])("%s is special: %s", (address, special) => {
    expect(isSpecialAddress(address)).toBe(special);
  });

  it("lets the allow-list name hosts, addresses and ranges", () => {
    const policy = new OutboundPolicy(["idp.internal", "10.0.0.0/8", "::1"]);
    expect(policy.refusal(new URL("http://idp.internal/token"))).toBeUndefined();
    expect(policy.refusal(new URL("http://10.9.9.9/token"))).toBeUndefined();
    expect(policy.refusal(new URL("https://[::1]/token"))).toBeUndefined();
    expect(policy.refusal(new URL("https://192.168.0.1/token"))).toBe("internal addresses (private or loopback or link-local) are refused");
    expect(policy.refusal(new URL("http://idp.example/token"))).toBe("plain http is allowed only to hosts on BROKER_OUTBOUND_ALLOWLIST");
    expect(policy.refusal(new URL("ftp://idp.example/"))).toBe("only https URLs are allowed");
  });
});
