import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import { DomainError, notFound } from "../errors.js";

/**
 * Who is calling. An admin acts for every organisation; everyone else for exactly one.
 * `label` identifies the caller in logs and rate limits without revealing a secret: the admin
 * token's name, an API key's prefix, or a JWT's subject.
 */
export type Caller = ({ kind: "admin"; label: string } | { kind: "organisation"; organisationId: string; label: string }) & {
  /** Signed in through the operator console (a session cookie), not with a bearer token. */
  viaConsole?: true;
};

/** Set by the auth interceptor for every RPC it lets through. */
export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "authenticated caller" });

/** Whether the caller's credential is still good (not revoked or expired); set with `callerKey`. */
export const callerStillValidKey = createContextKey<(() => Promise<boolean>) | undefined>(undefined, {
  description: "re-checks the caller's credential",
});

/** The client's address (see clientAddress), set for every call by the listeners. */
export const clientAddressKey = createContextKey<string>("unknown", { description: "client address" });

/**
 * The request's broken rules, held back by the request-rules interceptor when the caller may not
 * act for the organisation the request names (or may not call the service): the access check
 * answers first, so such a caller learns nothing from the rules. Should the check pass, they are
 * thrown then.
 */
export const heldViolationsKey = createContextKey<Error | undefined>(undefined, { description: "request rule violations held for the access check" });

function throwHeldViolations(ctx: HandlerContext): void {
  const held = ctx.values.get(heldViolationsKey);
  if (held !== undefined) throw held;
}

/**
 * Refuses a caller of another organisation with the same NOT_FOUND a missing resource gets, so
 * no caller can learn what exists elsewhere (`what` names the resource: "credential", …).
 */
export function requireOrganisation(ctx: HandlerContext, organisationId: string, what: string): void {
  const caller = ctx.values.get(callerKey);
  if (caller === undefined) throw new DomainError("unauthenticated", "unauthenticated");
  if (caller.kind === "organisation" && caller.organisationId !== organisationId) {
    throw notFound(what);
  }
  throwHeldViolations(ctx);
}

export function requireAdmin(ctx: HandlerContext): void {
  if (ctx.values.get(callerKey)?.kind !== "admin") {
    throw new DomainError("admin_only", "this method needs an admin key");
  }
  throwHeldViolations(ctx);
}
