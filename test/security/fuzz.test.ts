import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionService } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { InvalidInputError } from "../../src/errors.js";
import { buildAuthorizeUrl, planAuthorizationRequest } from "../../src/oauth/authorize-url.js";
import { parseCallbackQuery } from "../../src/oauth/callback-params.js";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { connectError } from "../support/errors.js";

/** Strings with the characters attackers like: separators, escapes, controls, look-alikes. */
const nasty = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: fc.constantFrom(..."&=%+#?/\\ \r\n\u0000\"'<>;:@state=redirect_uri=client_id=%26%3D%zz\u00e9\u0430".split("")), maxLength: 40 }),
  fc.constantFrom("state", "redirect_uri", "client_id", "response_type", "code_challenge", "nonce", "scope", "prompt", "%73tate", "STATE", "state%00"),
);

const REDIRECT_URI = "https://broker.example/oauth2/callback";

describe("property: the authorize URL builder", () => {
  it("either refuses the input with InvalidInputError, or carries our state and redirect URI exactly once", () => {
    fc.assert(
      fc.property(
        fc.record({
          authorizeUrl: fc.oneof(fc.constant("https://idp.example/authorize"), fc.webUrl({ withQueryParameters: true, withFragments: true }), nasty),
          scopes: fc.array(nasty, { maxLength: 5 }),
          disableOfflineAccess: fc.boolean(),
          prompt: fc.option(nasty, { nil: undefined }),
          additionalParams: fc.oneof(nasty, fc.array(fc.tuple(nasty, nasty), { maxLength: 4 }).map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join("&"))),
        }),
        (input) => {
          let url: URL;
          try {
            const plan = planAuthorizationRequest({ ...input, allowHttp: false });
            url = new URL(
              buildAuthorizeUrl(plan, { clientId: "client-1", redirectUri: REDIRECT_URI, state: "OUR_STATE", codeChallenge: "C", nonce: plan.needsNonce ? "N" : undefined }),
            );
          } catch (error) {
            expect(error).toBeInstanceOf(InvalidInputError);
            return;
          }
          expect(url.searchParams.getAll("state")).toEqual(["OUR_STATE"]);
          expect(url.searchParams.getAll("redirect_uri")).toEqual([REDIRECT_URI]);
          expect(url.searchParams.getAll("client_id")).toEqual(["client-1"]);
          expect(url.searchParams.getAll("response_type")).toEqual(["code"]);
          expect(url.searchParams.getAll("code_challenge")).toEqual(["C"]);
          const keys = [...url.searchParams.keys()];
          expect(new Set(keys).size).toBe(keys.length);
          expect(url.protocol).toBe("https:");
          expect(url.hash).toBe("");
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe("property: the callback parser", () => {
  it("never throws, and never returns a state or code that was given twice", () => {
    fc.assert(
      fc.property(fc.oneof(nasty, fc.array(fc.tuple(nasty, nasty), { maxLength: 6 }).map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join("&"))), (query) => {
        const params = parseCallbackQuery(query);
        if (params === undefined) return;
        const raw = new URLSearchParams(query);
        expect(raw.getAll("state")).toEqual([params.state]);
        expect(raw.getAll("code").length).toBeLessThanOrEqual(1);
      }),
      { numRuns: 3000 },
    );
  });
});

describe("property: over the wire", () => {
  let broker: TestBroker;
  let credentialId: string;
  beforeAll(async () => {
    broker = await startTestBroker();
    const { credential } = await broker.connect(CredentialService).createCredential({
      credential: { organisationId: "acme", name: "n", clientId: "client-1", clientSecret: "s", tokenUrl: "https://idp.example/token" },
    });
    credentialId = credential!.id;
  });
  afterAll(() => broker.close());

  it("InitialiseOAuth2Connection answers INVALID_ARGUMENT or a good URL, never INTERNAL", async () => {
    await fc.assert(
      fc.asyncProperty(fc.record({ scopes: fc.array(nasty, { maxLength: 3 }), prompt: fc.option(nasty, { nil: undefined }), additionalParams: nasty }), async (input) => {
        try {
          const { url } = await broker.connect(ConnectionService).initialiseOAuth2Connection({
            organisationId: "acme",
            connectorId: "c",
            credential: { id: credentialId, organisationId: "acme" },
            authorizeUrl: "https://idp.example/authorize",
            clientId: "client-1",
            ...input,
          });
          expect(new URL(url).searchParams.getAll("state")).toHaveLength(1);
          expect(new URL(url).searchParams.getAll("redirect_uri")).toEqual(["http://127.0.0.1:8080/oauth2/callback"]);
        } catch (error) {
          expect((await connectError(Promise.reject(error))).code).toBe(3); // INVALID_ARGUMENT
        }
      }),
      { numRuns: 150 },
    );
  });

  it("the callback answers 400 to any forged query, never 500", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(nasty, nasty), { maxLength: 5 }), async (pairs) => {
        const query = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
        const response = await fetch(`${broker.httpUrl}/oauth2/callback?${query}`);
        expect(response.status).toBe(400);
        await response.text();
      }),
      { numRuns: 150 },
    );
    expect(await broker.database.db.collection("connections").countDocuments()).toBe(0);
  });
});
