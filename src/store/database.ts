import {
  type Collection,
  type Db,
  type Document,
  type IndexDescription,
  MongoBulkWriteError,
  MongoClient,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  type OptionalUnlessRequiredId,
} from "mongodb";
import type { Logger } from "pino";

/** How often expired documents are deleted where the server has no TTL indexes (MongoDB's own TTL monitor runs every 60 s). */
const SWEEP_INTERVAL_MS = 60_000;

export interface Database {
  client: MongoClient;
  db: Db;
  /** Stops the sweepers started for servers without TTL indexes. */
  stopSweepers(): void;
  /** Whether a new, short-lived client can ping the database now. */
  answersNewClient(): Promise<boolean>;
  /** Closes the client and connects it again: a new topology, new monitors, new pool. */
  reconnect(): Promise<void>;
}

/** Receives the duration of every database command, for metrics. */
export type CommandObserver = (command: string, collection: string, outcome: "ok" | "error", seconds: number) => void;

export async function connectDatabase(uri: string, defaultDatabase: string, observe?: CommandObserver): Promise<Database> {
  // Fail fast while the database is away (callers get UNAVAILABLE and retry), unless the URI says otherwise.
  const timeouts = /[?&]serverSelectionTimeoutMS=/i.test(uri) ? {} : { serverSelectionTimeoutMS: 5_000 };
  const client = new MongoClient(uri, { appName: "oauth2-broker", ...timeouts, monitorCommands: observe !== undefined });
  if (observe !== undefined) {
    const started = new Map<number, { command: string; collection: string }>();
    client.on("commandStarted", (event) => {
      const target = event.command[event.commandName];
      started.set(event.requestId, { command: event.commandName, collection: typeof target === "string" ? target : "" });
    });
    const finish = (outcome: "ok" | "error") => (event: { requestId: number; duration: number }) => {
      const command = started.get(event.requestId);
      if (command === undefined) return;
      started.delete(event.requestId);
      observe(command.command, command.collection, outcome, event.duration / 1000);
    };
    client.on("commandSucceeded", finish("ok"));
    client.on("commandFailed", finish("error"));
  }
  await client.connect();
  const name = client.options.dbName && client.options.dbName !== "test" ? client.options.dbName : defaultDatabase;
  return {
    client,
    db: client.db(name),
    stopSweepers: () => {},
    answersNewClient: async () => {
      const probe = new MongoClient(uri, { serverSelectionTimeoutMS: 2_000, connectTimeoutMS: 2_000 });
      try {
        await probe.db("admin").command({ ping: 1 });
        return true;
      } catch {
        return false;
      } finally {
        await probe.close();
      }
    },
    reconnect: async () => {
      await client.close();
      await client.connect();
    },
  };
}

/**
 * Creates a collection's indexes. createIndexes is idempotent, so every instance may run this at
 * start-up. A TTL index the server refuses (FerretDB v1 answers NotImplemented) is created
 * without its TTL and replaced by a periodic sweep that deletes the same expired documents.
 */
export async function ensureIndexes(
  database: Database,
  // biome-ignore lint/suspicious/noExplicitAny: any collection's document type
  collection: Collection<any>,
  indexes: readonly IndexDescription[],
  logger: Logger,
  sweepIntervalMs = SWEEP_INTERVAL_MS,
): Promise<void> {
  for (const index of indexes) {
    const refusedTtl = await createIndex(collection, index);
    if (refusedTtl !== undefined) startSweeper(database, collection, index, refusedTtl, logger, sweepIntervalMs);
  }
}

/**
 * Creates one index. A TTL index the server refuses (FerretDB v1 answers NotImplemented) is
 * created without its TTL, unless `plainIfTtlRefused` is false (an index that exists only for its
 * TTL); the refused `expireAfterSeconds` is returned so the caller can make up for it
 * (ensureIndexes sweeps; collections dropped whole need nothing).
 */
// biome-ignore lint/suspicious/noExplicitAny: any collection's document type
export async function createIndex(collection: Collection<any>, index: IndexDescription, plainIfTtlRefused = true): Promise<number | undefined> {
  try {
    await collection.createIndexes([index]);
    return undefined;
  } catch (error) {
    if (index.expireAfterSeconds === undefined || !isNotImplemented(error)) throw error;
    const { expireAfterSeconds, ...plain } = index;
    if (plainIfTtlRefused) await collection.createIndexes([plain]);
    return expireAfterSeconds;
  }
}

/** Socket errors the driver sometimes passes through unwrapped when the server goes away. */
const SOCKET_ERRORS = new Set(["EPIPE", "ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "ERR_SOCKET_CLOSED"]);

/** The database cannot be reached right now: worth a retry, not a bug. */
export function isDatabaseUnavailable(error: unknown): boolean {
  return (
    error instanceof MongoNetworkError ||
    error instanceof MongoServerSelectionError ||
    error instanceof MongoNotConnectedError ||
    error instanceof MongoTopologyClosedError ||
    // insertMany wraps the driver's own errors (a lost connection, no server to select) in a
    // MongoBulkWriteError that keeps the original as its errorResponse.
    (error instanceof MongoBulkWriteError && error.errorResponse instanceof Error && isDatabaseUnavailable(error.errorResponse)) ||
    // Regression: "This socket has been ended by the other party" (EPIPE) reached callers as INTERNAL.
    (error instanceof Error && SOCKET_ERRORS.has(String((error as NodeJS.ErrnoException).code)))
  );
}

/** A unique index refused the write (E11000): someone stored that key first. */
export function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === 11000;
}

/**
 * Inserts the document unless one with its `_id` is already there (a repeated note or copy is a
 * no-op). Returns whether this call inserted it.
 */
export async function insertUnlessPresent<T extends Document>(collection: Collection<T>, document: OptionalUnlessRequiredId<T>): Promise<boolean> {
  try {
    await collection.insertOne(document);
    return true;
  } catch (error) {
    if (!isDuplicateKey(error)) throw error;
    return false;
  }
}

/** Inserts each document unless one with its `_id` is there (unordered: the others still go in). */
export async function insertManyUnlessPresent<T extends Document>(collection: Collection<T>, documents: OptionalUnlessRequiredId<T>[]): Promise<void> {
  try {
    await collection.insertMany(documents, { ordered: false });
  } catch (error) {
    if (!(error instanceof MongoBulkWriteError) || !error.writeErrors || [error.writeErrors].flat().some((e) => e.code !== 11000)) throw error;
  }
}

/**
 * A set-up step per key (a window collection's indexes), run once per instance and shared by
 * concurrent callers; a failed attempt (the database away) is tried again by the next call.
 */
export class OncePerKey {
  readonly #runs = new Map<string, Promise<void>>();

  run(key: string, step: () => Promise<void>): Promise<void> {
    let running = this.#runs.get(key);
    if (running === undefined) {
      running = step();
      running.catch(() => this.#runs.delete(key));
      this.#runs.set(key, running);
    }
    return running;
  }

  /** The key's collection is gone: a later run for it starts again. */
  forget(key: string): void {
    this.#runs.delete(key);
  }
}

/** Drops a collection; one another instance dropped first is fine. */
export async function dropIfPresent(db: Db, name: string): Promise<void> {
  try {
    await db.collection(name).drop();
  } catch (error) {
    if (!isNamespaceNotFound(error)) throw error;
  }
}

/** The collection is not there (any more): another instance dropped or renamed it first. */
export function isNamespaceNotFound(error: unknown): boolean {
  return error instanceof MongoServerError && (error.code === 26 || error.codeName === "NamespaceNotFound");
}

function isNotImplemented(error: unknown): boolean {
  return error instanceof MongoServerError && (error.code === 238 || error.codeName === "NotImplemented");
}

function startSweeper(
  database: Database,
  collection: Collection<Document>,
  index: IndexDescription,
  expireAfterSeconds: number,
  logger: Logger,
  intervalMs: number,
): void {
  const [field] = Object.keys(index.key as Record<string, unknown>);
  if (field === undefined) return;
  const log = logger.child({ collection: collection.collectionName, field });
  log.warn("the server does not support TTL indexes; sweeping expired documents periodically instead");
  const sweep = async (): Promise<void> => {
    try {
      const cutoff = new Date(Date.now() - expireAfterSeconds * 1000);
      const { deletedCount } = await collection.deleteMany({ [field]: { $lt: cutoff } });
      if (deletedCount > 0) log.debug({ deleted: deletedCount }, "swept expired documents");
    } catch (error) {
      log.warn({ err: error }, "sweep of expired documents failed; will retry");
    }
  };
  const timer = setInterval(sweep, intervalMs);
  timer.unref();
  const previous = database.stopSweepers;
  database.stopSweepers = () => {
    previous();
    clearInterval(timer);
  };
}
