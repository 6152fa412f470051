import { MongoBulkWriteError, MongoNetworkError, MongoServerError, MongoServerSelectionError } from "mongodb";
import { describe, expect, it } from "vitest";
import { isDatabaseUnavailable } from "../../src/store/database.js";

// insertMany wraps the driver's own failures in MongoBulkWriteError, as the driver's bulk code does
// (`new MongoBulkWriteError(thrownError, result)`); the result plays no part here.
const wrapped = (error: Error) => new MongoBulkWriteError(error, {} as never);

describe("isDatabaseUnavailable", () => {
  it("knows the driver's errors for a database that cannot be reached, bare or wrapped by insertMany", () => {
    const lost = new MongoNetworkError("connection 1 to 127.0.0.1:27017 closed");
    const noServer = new MongoServerSelectionError("connect ECONNREFUSED 127.0.0.1:27017", { error: undefined } as never);
    expect(isDatabaseUnavailable(lost)).toBe(true);
    expect(isDatabaseUnavailable(noServer)).toBe(true);
    // Regression: a grouped insert that met a closed port answered INTERNAL instead of UNAVAILABLE.
    expect(isDatabaseUnavailable(wrapped(noServer))).toBe(true);
    expect(isDatabaseUnavailable(wrapped(lost))).toBe(true);
  });

  it("does not take the server's own refusals for an outage", () => {
    const duplicate = new MongoBulkWriteError({ message: "E11000 duplicate key", code: 11000, writeErrors: [] }, {} as never);
    expect(isDatabaseUnavailable(duplicate)).toBe(false);
    expect(isDatabaseUnavailable(new MongoServerError({ message: "bad value", code: 2 }))).toBe(false);
    expect(isDatabaseUnavailable(new Error("a bug"))).toBe(false);
  });
});
