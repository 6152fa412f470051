import type { ConnectionDocument } from "../src/store/connections.js";

/** A connection as a callback stores it (~600 bytes, like the broker's), made at `at`. */
export function storedConnection(id: string, organisationId: string, at = new Date()): ConnectionDocument {
  return {
    _id: id,
    organisation_id: organisationId,
    connector_id: "bench-connector",
    credential_id: "bench-credential",
    status: "ACTIVE",
    scopes: ["email", "profile"],
    token_type: "Bearer",
    access_token: `v1.k1.${"a".repeat(200)}`,
    refresh_token: `v1.k1.${"r".repeat(200)}`,
    expire_time: new Date(at.getTime() + 3_600_000),
    token_url: "https://provider.example/token",
    external_account: { id: id.slice(-12), email: "someone@example.com" },
    refresh_token_time: at,
    pending_events: [],
    create_time: at,
    update_time: at,
  };
}
