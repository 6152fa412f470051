import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Metrics } from "../observability/metrics.js";
import { ApiKeyStore, apiKeyIndexes } from "../store/api-keys.js";
import { connectionExpiryIndexes } from "../store/connection-expiries.js";
import { ConnectionStore, connectionIndexes } from "../store/connections.js";
import { ConsoleSessionStore, consoleSessionIndexes } from "../store/console-sessions.js";
import { CredentialStore, credentialIndexes } from "../store/credentials.js";
import { DeviceAuthorizationStore, deviceAuthorizationIndexes } from "../store/device-authorizations.js";
import { connectDatabase, type Database, ensureIndexes } from "../store/database.js";
import { EventStore, eventIndexes } from "../store/events.js";
import { LeaseStore, leaseIndexes } from "../store/leases.js";
import { ListingReads } from "../store/listing-reads.js";
import { OAuthStateStore } from "../store/oauth-states.js";
import { OrganisationStore, organisationIndexes } from "../store/organisations.js";
import { outboxIndexes } from "../store/outbox.js";
import { webhookDeliveryIndexes } from "../store/webhook-deliveries.js";

/** Every collection's owning store, on one database connection. */
export interface Storage {
  database: Database;
  credentials: CredentialStore;
  states: OAuthStateStore;
  connections: ConnectionStore;
  organisations: OrganisationStore;
  events: EventStore;
  leases: LeaseStore;
  apiKeys: ApiKeyStore;
  consoleSessions: ConsoleSessionStore;
  deviceAuthorizations: DeviceAuthorizationStore;
}

/** Connects, builds the stores and makes sure each collection has the indexes its queries need. */
export async function openStorage(config: Config & { mongodbUri: string }, metrics: Metrics, logger: Logger): Promise<Storage> {
  const database = await connectDatabase(config.mongodbUri, config.mongodbDatabase, (command, collection, outcome, seconds) =>
    metrics.dbCommands.observe({ command, collection: windowedCollection(collection), outcome }, seconds),
  );
  // One queue for every listing's reads, connections' and events' alike (see ListingReads).
  const listingReads = new ListingReads(config.listingReads);
  const storage: Storage = {
    database,
    credentials: new CredentialStore(database.db),
    // Drops the collections of state windows (and legacy ones) once every state in them has expired.
    states: new OAuthStateStore(database.db, config.stateTtlSeconds),
    connections: new ConnectionStore(database.db, listingReads),
    organisations: new OrganisationStore(database.db),
    events: new EventStore(database.db, config.eventRetentionSeconds * 1000, listingReads),
    leases: new LeaseStore(database.db),
    apiKeys: new ApiKeyStore(database.db),
    consoleSessions: new ConsoleSessionStore(database.db),
    deviceAuthorizations: new DeviceAuthorizationStore(database.db),
  };
  const { credentials, connections, organisations, events, leases, apiKeys, consoleSessions } = storage;
  const indexed = [
    [credentials.collection, credentialIndexes],
    [connections.collection, connectionIndexes],
    [organisations.collection, organisationIndexes],
    [connections.outbox.collection, outboxIndexes],
    [connections.expiries.collection, connectionExpiryIndexes],
    [events.collection, eventIndexes],
    [events.deliveries.collection, webhookDeliveryIndexes],
    [leases.collection, leaseIndexes],
    [apiKeys.collection, apiKeyIndexes],
    [consoleSessions.collection, consoleSessionIndexes],
    [storage.deviceAuthorizations.collection, deviceAuthorizationIndexes],
  ] as const;
  for (const [collection, indexes] of indexed) await ensureIndexes(database, collection, indexes, logger);
  return storage;
}

/** Stops the database's sweepers and closes its connection. */
export async function closeStorage(storage: Storage): Promise<void> {
  storage.database.stopSweepers();
  await storage.database.client.close();
}

/** A window collection's family name (its windows are one collection to metrics: bounded labels); any other name as it is. */
function windowedCollection(name: string): string {
  if (name.startsWith("oauth_states_")) return "oauth_states";
  if (name.startsWith("events_recent_")) return "events_recent";
  if (name.startsWith("events_until_")) return "events";
  if (name.startsWith("event_index_until_")) return "event_index";
  return name;
}
