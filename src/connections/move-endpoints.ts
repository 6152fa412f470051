import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectionDocument, ConnectionStore } from "../store/connections.js";
import type { CredentialDocument } from "../store/credentials.js";
import type { Lease, LeaseStore } from "../store/leases.js";
import { endpointsOf } from "./secrets.js";
import { type ProviderCatalog, profileFor } from "../providers/catalog.js";
import { connectionLeaseKey } from "./token-refresher.js";

export interface MoveDeps {
  connections: ConnectionStore;
  leases: LeaseStore;
  /** How long a refresh may hold a connection's lease: the longest wait for one. */
  leaseMs: number;
  /** The credential's endpoints for a connection come from its profile (catalog templates filled). */
  providers: ProviderCatalog;
}

/**
 * An admin's explicit move (UpdateCredential `move_connections`): every connection of the
 * credential records the credential's current endpoints, so its tokens may be sent there from now
 * on, and one stopped because the endpoints had changed (`endpoint_changed`) is usable again. Each
 * connection is rewritten under its lease, like every connection write. Idempotent: when a lease
 * stays busy the others are moved and the call fails UNAVAILABLE, to be repeated.
 */
export async function moveConnectionsToEndpoints(deps: MoveDeps, credential: CredentialDocument): Promise<void> {
  let busy = 0;
  for (const id of await deps.connections.idsByCredential(credential.organisation_id, credential._id)) {
    const lease = await acquire(deps, id);
    if (lease === null) {
      busy++;
      continue;
    }
    try {
      const connection = await deps.connections.findById(credential.organisation_id, id);
      if (connection === null || connection.credential_id !== credential._id) continue;
      const endpoints = endpointsOf(profileFor(deps.providers, credential, connection.connection_config));
      const set: Partial<ConnectionDocument> = { ...endpoints };
      const unset: Array<keyof ConnectionDocument> = endpoints.revocation_url === undefined ? ["revocation_url"] : [];
      if (connection.status === "NEEDS_REAUTHORIZATION" && connection.status_reason === "endpoint_changed") {
        set.status = "ACTIVE";
        unset.push("status_reason");
      }
      await deps.connections.update(id, { set, unset });
    } finally {
      await deps.leases.release(lease);
    }
  }
  if (busy > 0) throw new ConnectError(`${busy} connections were busy and not moved - try again`, Code.Unavailable);
}

async function acquire(deps: MoveDeps, id: string): Promise<Lease | null> {
  const deadline = Date.now() + deps.leaseMs + 2_000;
  while (Date.now() < deadline) {
    const lease = await deps.leases.tryAcquire(connectionLeaseKey(id), deps.leaseMs);
    if (lease !== null) return lease;
    await sleep(100);
  }
  return null;
}
