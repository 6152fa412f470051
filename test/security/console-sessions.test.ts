import { randomBytes, randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { recordSecrets } from "../support/run-record.js";

/**
 * Issue 20, item 2: a console session lasts only as long as what it was made with. For an API
 * key the console tests show it (revoked key, ended session); here, for the admin token: a
 * restart with another BROKER_ADMIN_TOKEN must end the sessions the old one made.
 */
const database = `test_${randomUUID().replaceAll("-", "")}`;
const T1 = randomBytes(32).toString("base64url");
let broker: TestBroker | undefined;

afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

/** The broker on the shared database, with this admin token. */
async function startWith(adminToken: string): Promise<TestBroker> {
  broker = await startTestBroker({ MONGODB_DATABASE: database, BROKER_ADMIN_TOKEN: adminToken });
  return broker;
}

interface Session {
  /** `name=value`, as the browser sends it back. */
  cookie: string;
  csrfHeader: string;
  csrfToken: string;
}

async function signIn(target: TestBroker, key: string): Promise<Session> {
  const response = await fetch(`${target.httpUrl}/console/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { csrfToken: string; csrfHeader: string; caller: { admin: boolean } };
  expect(body.caller.admin).toBe(true);
  return { cookie: response.headers.get("set-cookie")!.split(";", 1)[0]!, csrfHeader: body.csrfHeader, csrfToken: body.csrfToken };
}

/** GET /console/session and an admin RPC (minting an admin API key), both with the session's cookie. */
async function useSession(target: TestBroker, session: Session): Promise<{ current: number; createApiKey: number }> {
  const current = await fetch(`${target.httpUrl}/console/session`, { headers: { cookie: session.cookie } });
  const created = await fetch(`${target.httpUrl}/oauth2broker.v1.ApiKeyService/CreateApiKey`, {
    method: "POST",
    headers: { "content-type": "application/json", cookie: session.cookie, [session.csrfHeader]: session.csrfToken },
    body: JSON.stringify({ name: "minted from the console", admin: true }),
  });
  // A minted key is a secret: the run's log check looks for it.
  recordSecrets(((await created.json()) as { key?: string }).key);
  return { current: current.status, createApiKey: created.status };
}

describe("console sessions made with the admin token (issue 20, item 2)", () => {
  it("regression: a session made with the admin token outlived a restart with another token", async () => {
    const first = await startWith(T1);
    const session = await signIn(first, T1);
    expect(await useSession(first, session)).toEqual({ current: 200, createApiKey: 200 });
    await first.close();

    // A restart with the same token keeps the session.
    const same = await startWith(T1);
    expect(await useSession(same, session)).toEqual({ current: 200, createApiKey: 200 });
    await same.close();

    // Another token: the old session is refused, and nothing is minted with it.
    const rotated = await startWith(randomBytes(32).toString("base64url"));
    const keys = () => rotated.database.db.collection("api_keys").countDocuments();
    const keysBefore = await keys();
    expect(await useSession(rotated, session)).toEqual({ current: 401, createApiKey: 401 });
    expect(await keys()).toBe(keysBefore);
    // The new token signs in as usual.
    expect((await useSession(rotated, await signIn(rotated, rotated.adminToken))).current).toBe(200);
  }, 60_000);
});
