import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { callerKey } from "../auth/caller.js";

/** How long a refused listing is told to wait (google.rpc.RetryInfo, and `retry-after` in seconds). */
const LISTING_RETRY_MS = 1_000;

/** Listing and counting RPCs: their cost grows with what the organisation holds, not with the call. */
export function isListingMethod(name: string): boolean {
  return name.startsWith("List") || name.startsWith("Count");
}

/**
 * At most `maxPerOrganisation` listing and counting calls (List*, Count*: the console's pages use
 * the same RPCs) in flight per organisation on this instance, across all its keys, so one
 * organisation's heavy reads cannot take the database from another's hot paths (GetAccessToken,
 * Initialise, the callback): issue 21. Past it, RESOURCE_EXHAUSTED with RetryInfo. The
 * organisation is the one the request names (an admin listing one organisation counts against
 * it); calls that name none (ListOrganisations, ListProviders) are not counted. Runs after
 * authentication.
 */
export function listingBudgetInterceptor(maxPerOrganisation: number): Interceptor {
  const inFlight = new Map<string, number>();
  return (next) => async (req) => {
    if (req.stream || !isListingMethod(req.method.name) || req.contextValues.get(callerKey) === undefined) return next(req);
    const organisationId = (req.message as { organisationId?: unknown }).organisationId;
    if (typeof organisationId !== "string" || organisationId === "") return next(req);
    const count = inFlight.get(organisationId) ?? 0;
    if (count >= maxPerOrganisation) {
      throw new ConnectError(
        "too many listings in flight for this organisation - retry shortly",
        Code.ResourceExhausted,
        { "retry-after": String(Math.ceil(LISTING_RETRY_MS / 1000)) },
        [{ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(LISTING_RETRY_MS) } }],
      );
    }
    inFlight.set(organisationId, count + 1);
    try {
      return await next(req);
    } finally {
      const left = (inFlight.get(organisationId) ?? 1) - 1;
      if (left === 0) inFlight.delete(organisationId);
      else inFlight.set(organisationId, left);
    }
  };
}
