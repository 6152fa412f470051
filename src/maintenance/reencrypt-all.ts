import type { Db } from "mongodb";
import { reencryptConnection } from "../connections/connection-lifecycle.js";
import { ConnectionStore } from "../store/connections.js";
import { CredentialStore } from "../store/credentials.js";
import { DeviceAuthorizationStore } from "../store/device-authorizations.js";
import { connectionLeaseKey, LeaseStore } from "../store/leases.js";
import { OAuthStateStore } from "../store/oauth-states.js";
import { OrganisationStore } from "../store/organisations.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { codeVerifierContext, connectionSecretContext, webhookSecretContext } from "../crypto/secret-contexts.js";

export interface ReencryptReport {
  credentials: number;
  connections: number;
  oauthStates: number;
  organisations: number;
  /** Device codes still waiting for their end user (device_authorizations). */
  deviceCodes: number;
  /** Connections (or their device codes) skipped because their lease stayed busy (run the command again). */
  busy: number;
}

/**
 * Moves every stored secret to the primary key (the first of BROKER_ENCRYPTION_KEYS), while
 * brokers keep running: they decrypt old and new ciphertexts alike. Connections are rewritten
 * under their lease, like every other connection write. Run it after adding a new first key;
 * once it reports nothing left to move, the old key can be removed.
 */
export async function reencryptAll(db: Db, box: SecretBox): Promise<ReencryptReport> {
  const connections = new ConnectionStore(db);
  const leases = new LeaseStore(db);
  const report: ReencryptReport = {
    credentials: await new CredentialStore(db).reencrypt(box),
    oauthStates: await new OAuthStateStore(db).reencrypt(box, codeVerifierContext),
    organisations: await new OrganisationStore(db).reencrypt(box, webhookSecretContext),
    connections: 0,
    deviceCodes: 0,
    busy: 0,
  };
  for (const id of await connections.idsWithSecrets()) {
    const outcome = await reencryptConnection(connections, leases, id, box);
    if (outcome === "moved") report.connections++;
    if (outcome === "busy") report.busy++;
  }
  // Written under the connection's lease, like the poller's writes to the same document.
  const deviceAuthorizations = new DeviceAuthorizationStore(db);
  for (const id of await deviceAuthorizations.ids()) {
    const lease = await leases.acquire(connectionLeaseKey(id), 10_000, 5_000, 100);
    if (lease === null) {
      report.busy++;
      continue;
    }
    try {
      if (await deviceAuthorizations.reencrypt(id, box, connectionSecretContext)) report.deviceCodes++;
    } finally {
      await leases.release(lease);
    }
  }
  return report;
}
