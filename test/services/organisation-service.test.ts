import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrganisationService } from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectError } from "../support/errors.js";

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.close());

describe("OrganisationService", () => {
  it("has empty defaults, then stores the allow-list", async () => {
    const client = broker.connect(OrganisationService);
    const { settings: defaults } = await client.getOrganisationSettings({ organisationId: "fresh" });
    expect(defaults?.allowedReturnUrls).toEqual([]);
    expect(defaults?.updateTime).toBeUndefined();

    const { settings } = await client.updateOrganisationSettings({
      settings: { organisationId: "fresh", allowedReturnUrls: ["https://app.example.com/oauth", "https://app.example.com/oauth"] },
      updateMask: { paths: ["allowed_return_urls"] },
    });
    expect(settings?.allowedReturnUrls).toEqual(["https://app.example.com/oauth"]);
    const { settings: read } = await client.getOrganisationSettings({ organisationId: "fresh" });
    expect(read).toEqual(settings);
  });

  it("takes the README's curl body (a FieldMask in its JSON form)", async () => {
    const response = await fetch(`${broker.httpUrl}/oauth2broker.v1.OrganisationService/UpdateOrganisationSettings`, {
      method: "POST",
      headers: { authorization: `Bearer ${broker.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({
        settings: { organisationId: "curl", allowedReturnUrls: ["http://localhost:3000/integrations"] },
        updateMask: "allowedReturnUrls",
      }),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { settings: { allowedReturnUrls: string[] } }).settings.allowedReturnUrls).toEqual(["http://localhost:3000/integrations"]);
  });

  it.each([
    [["https://app.example.com/oauth?x=1"], '"settings.allowed_return_urls[0]" must not contain a query'],
    [["https://ok.example/", "http://plain.example/"], '"settings.allowed_return_urls[1]" must be an https URL (http is allowed only for loopback hosts)'],
    [["https://app.example.com/#frag"], '"settings.allowed_return_urls[0]" must not contain a fragment'],
  ])("rejects %j naming the entry", async (allowedReturnUrls, message) => {
    const error = await connectError(
      broker.connect(OrganisationService).updateOrganisationSettings({
        settings: { organisationId: "bad", allowedReturnUrls },
        updateMask: { paths: ["allowed_return_urls"] },
      }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(message);
    expect(await broker.database.db.collection("organisations").countDocuments({ _id: "bad" as never })).toBe(0);
  });
});
