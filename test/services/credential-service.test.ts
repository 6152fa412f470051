import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenEndpointAuthMethod } from "../../gen/oauth2broker/v1/credential_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectError } from "../support/errors.js";

let broker: TestBroker;
let client: Client<typeof CredentialService>;

beforeAll(async () => {
  broker = await startTestBroker();
  client = broker.connect(CredentialService);
});
afterAll(() => broker.close());

const SECRET = "client-secret-value-7f3a9";

function newCredential(overrides: Record<string, unknown> = {}) {
  return {
    organisationId: "acme",
    name: "Google Workspace",
    clientId: "client-123",
    clientSecret: SECRET,
    tokenUrl: "https://oauth2.googleapis.com/token",
    ...overrides,
  };
}

describe("CredentialService over Connect JSON", () => {
  it("creates a credential over plain HTTP+JSON, as curl would, and never returns the secret", async () => {
    const response = await fetch(`${broker.httpUrl}/oauth2broker.v1.CredentialService/CreateCredential`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${broker.adminToken}` },
      body: JSON.stringify({ credential: newCredential({ tokenEndpointAuthMethod: "TOKEN_ENDPOINT_AUTH_METHOD_CLIENT_SECRET_POST" }) }),
    });
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(text).not.toContain(SECRET);
    const { credential } = JSON.parse(text);
    expect(credential).toMatchObject({
      organisationId: "acme",
      name: "Google Workspace",
      clientId: "client-123",
      clientSecretSet: true,
      tokenUrl: "https://oauth2.googleapis.com/token",
      tokenEndpointAuthMethod: "TOKEN_ENDPOINT_AUTH_METHOD_CLIENT_SECRET_POST",
    });
    expect(credential.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(credential.clientSecret).toBeUndefined();
    expect(Date.parse(credential.createTime)).toBeGreaterThan(Date.now() - 60_000);
  });

  it("stores the secret encrypted, tagged with the key ID", async () => {
    const { credential } = await client.createCredential({ credential: newCredential() });
    const stored = await broker.database.db.collection("credentials").findOne({ _id: credential!.id as never });
    expect(stored?.client_secret).toMatch(/^test1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(JSON.stringify(stored)).not.toContain(SECRET);
  });

  it("gets, updates and deletes a credential", async () => {
    const { credential: created } = await client.createCredential({ credential: newCredential({ issuer: "https://accounts.google.com" }) });
    const id = created!.id;
    const { credential: fetched } = await client.getCredential({ organisationId: "acme", id });
    expect(fetched).toEqual(created);
    expect(fetched?.issuer).toBe("https://accounts.google.com");
    expect(fetched?.tokenEndpointAuthMethod).toBe(TokenEndpointAuthMethod.CLIENT_SECRET_BASIC);

    const { credential: updated } = await client.updateCredential({
      // Clearing the issuer changes where secrets may go, so it comes with a new client secret.
      credential: { id, organisationId: "acme", name: "Renamed", clientId: "client-456", disablePkce: true, clientSecret: "new-secret-value" },
      updateMask: { paths: ["name", "client_id", "disable_pkce", "issuer", "client_secret"] },
    });
    expect(updated).toMatchObject({ name: "Renamed", clientId: "client-456", disablePkce: true, tokenUrl: created!.tokenUrl });
    expect(updated?.issuer).toBeUndefined();
    expect(updated!.updateTime!.seconds >= created!.updateTime!.seconds).toBe(true);
    expect(updated?.createTime).toEqual(created?.createTime);

    await client.deleteCredential({ organisationId: "acme", id });
    expect(await connectError(client.getCredential({ organisationId: "acme", id }))).toMatchObject({
      code: Code.NotFound,
      rawMessage: "credential not found",
    });
    expect((await connectError(client.deleteCredential({ organisationId: "acme", id }))).code).toBe(Code.NotFound);
  });

  it("re-encrypts a rotated secret without returning it", async () => {
    const { credential } = await client.createCredential({ credential: newCredential() });
    const before = await broker.database.db.collection("credentials").findOne({ _id: credential!.id as never });
    await client.updateCredential({
      credential: { id: credential!.id, organisationId: "acme", clientSecret: "rotated-secret-value" },
      updateMask: { paths: ["client_secret"] },
    });
    const after = await broker.database.db.collection("credentials").findOne({ _id: credential!.id as never });
    expect(after?.client_secret).not.toBe(before?.client_secret);
    expect(after?.client_secret).not.toContain("rotated");
  });

  it("hides another organisation's credential behind NOT_FOUND", async () => {
    const { credential } = await client.createCredential({ credential: newCredential({ organisationId: "other-org" }) });
    const id = credential!.id;
    for (const call of [
      () => client.getCredential({ organisationId: "acme", id }),
      () => client.deleteCredential({ organisationId: "acme", id }),
      () => client.updateCredential({ credential: { id, organisationId: "acme", name: "x" }, updateMask: { paths: ["name"] } }),
    ]) {
      expect((await connectError(call())).code).toBe(Code.NotFound);
    }
    const { credential: untouched } = await client.getCredential({ organisationId: "other-org", id });
    expect(untouched?.name).toBe("Google Workspace");
  });

  it("lists an organisation's credentials a page at a time", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { credential } = await client.createCredential({ credential: newCredential({ organisationId: "paged", name: `c${i}` }) });
      ids.push(credential!.id);
    }
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await client.listCredentials({ organisationId: "paged", pageSize: 2, pageToken });
      expect(page.credentials.length).toBeLessThanOrEqual(2);
      seen.push(...page.credentials.map((c) => c.id));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "");
    expect(seen).toEqual(ids);
    expect(pages).toBe(3);
    const all = await client.listCredentials({ organisationId: "paged" });
    expect(all.credentials.map((c) => c.name)).toEqual(["c0", "c1", "c2", "c3", "c4"]);
    expect(all.nextPageToken).toBe("");
  });

  it.each([
    [{ credential: undefined }, '"credential" is required'],
    [{ credential: newCredential({ organisationId: "" }) }, '"credential.organisation_id" is required'],
    [{ credential: newCredential({ organisationId: "a/b" }) }, '"credential.organisation_id" must be 1 to 128 characters of A-Z a-z 0-9 . _ -'],
    [{ credential: newCredential({ name: "" }) }, '"credential.name" is required'],
    [{ credential: newCredential({ name: "n".repeat(201) }) }, '"credential.name" must be at most 200 characters'],
    [{ credential: newCredential({ clientId: "" }) }, '"credential.client_id" is required'],
    [{ credential: newCredential({ clientSecret: "" }) }, '"credential.client_secret" is required'],
    [{ credential: newCredential({ clientSecret: "s".repeat(2049) }) }, '"credential.client_secret" must be at most 2048 characters'],
    [{ credential: newCredential({ tokenUrl: "http://idp.example/token" }) }, '"credential.token_url" is refused - plain http is allowed only to hosts on BROKER_OUTBOUND_ALLOWLIST'],
    [{ credential: newCredential({ tokenUrl: "https://idp.example/token#x" }) }, '"credential.token_url" must not contain a fragment'],
    [{ credential: newCredential({ issuer: "https://idp.example/?tenant=1" }) }, '"credential.issuer" must not contain a query'],
    [{ credential: newCredential({ tokenEndpointAuthMethod: 9 }) }, '"credential.token_endpoint_auth_method" must be one of the defined enum values'],
  ])("rejects invalid input %# with INVALID_ARGUMENT naming the field, and stores nothing", async (request, message) => {
    const before = await broker.database.db.collection("credentials").countDocuments();
    const error = await connectError(client.createCredential(request as never));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(message);
    expect(await broker.database.db.collection("credentials").countDocuments()).toBe(before);
  });

  it("never echoes a rejected secret in the error", async () => {
    const error = await connectError(client.createCredential({ credential: newCredential({ clientSecret: `${SECRET}\n` }) }));
    expect(error.rawMessage).toBe('"credential.client_secret" must not contain control characters');
    expect(JSON.stringify(error)).not.toContain(SECRET);
  });

  it("validates list and update requests", async () => {
    expect((await connectError(client.listCredentials({ organisationId: "acme", pageSize: 101 }))).rawMessage).toBe(
      '"page_size" must be greater than or equal to 0 and less than or equal to 100',
    );
    expect((await connectError(client.listCredentials({ organisationId: "acme", pageToken: "garbage" }))).rawMessage).toBe(
      '"page_token" is not a token from a previous page',
    );
    const { credential } = await client.createCredential({ credential: newCredential() });
    const update = (paths: string[]) =>
      connectError(client.updateCredential({ credential: { id: credential!.id, organisationId: "acme" }, updateMask: { paths } }));
    expect((await update([])).rawMessage).toBe('"update_mask" must name at least one field');
    expect((await update(["create_time"])).rawMessage).toBe('"update_mask" names "create_time" that cannot be updated');
    expect((await update(["name"])).rawMessage).toBe('"credential.name" is required');
  });

  it("requires the admin token", async () => {
    const anonymous = broker.connect(CredentialService, null);
    expect(await connectError(anonymous.listCredentials({ organisationId: "acme" }))).toMatchObject({
      code: Code.Unauthenticated,
      rawMessage: 'missing bearer token in the "authorization" header',
    });
    const wrong = broker.connect(CredentialService, "x".repeat(43));
    expect(await connectError(wrong.listCredentials({ organisationId: "acme" }))).toMatchObject({
      code: Code.Unauthenticated,
      rawMessage: "invalid token",
    });
    expect((await connectError(wrong.createCredential({ credential: newCredential() }))) instanceof ConnectError).toBe(true);
  });
});
