import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BadRequestSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ConnectionError, refreshFailed } from "../../src/connections/connection-errors.js";
import { DomainError, type DomainErrorCode, InvalidInputError, notFound } from "../../src/errors.js";
import { toEdgeError } from "../../src/interceptors/logging.js";
import { ProviderCallError } from "../../src/network/provider-call-error.js";

describe("toEdgeError: domain errors become gRPC codes in one place", () => {
  it("gives each DomainError code its gRPC code and keeps the message", () => {
    const codes: Record<DomainErrorCode, Code> = {
      not_found: Code.NotFound,
      unauthenticated: Code.Unauthenticated,
      admin_only: Code.PermissionDenied,
      precondition_failed: Code.FailedPrecondition,
      busy: Code.Unavailable,
      concurrent_change: Code.Aborted,
    };
    for (const [code, grpc] of Object.entries(codes)) {
      const edge = toEdgeError(new DomainError(code as DomainErrorCode, `"field" is ${code}`));
      expect(edge, code).toMatchObject({ code: grpc, rawMessage: `"field" is ${code}` });
      expect(edge.details, code).toEqual([]);
    }
    expect(toEdgeError(notFound("credential"))).toMatchObject({ code: Code.NotFound, rawMessage: "credential not found" });
  });

  it("keeps InvalidInputError's google.rpc.BadRequest and ConnectionError's google.rpc.RetryInfo", () => {
    const invalid = toEdgeError(new InvalidInputError("credential.id", '"credential.id" is required'));
    expect(invalid).toMatchObject({ code: Code.InvalidArgument, rawMessage: '"credential.id" is required' });
    expect(invalid.findDetails(BadRequestSchema)[0]?.fieldViolations).toMatchObject([{ field: "credential.id", description: '"credential.id" is required' }]);

    const failed = toEdgeError(refreshFailed(2500));
    expect(failed).toMatchObject({ code: Code.Unavailable, rawMessage: "refreshing the access token failed at the provider - try again later" });
    const delay = failed.findDetails(RetryInfoSchema)[0]?.retryDelay;
    expect([Number(delay?.seconds), delay?.nanos]).toEqual([2, 500_000_000]);
    expect(toEdgeError(new ConnectionError("superseded", "superseded"))).toMatchObject({ code: Code.FailedPrecondition });
  });

  it("never shows a provider call's failure to the caller: it is INTERNAL, with the error as its cause", () => {
    const error = new ProviderCallError("oauth_error", "provider error (HTTP 400)", { oauthError: "invalid_grant", status: 400 });
    const edge = toEdgeError(error);
    expect(edge).toMatchObject({ code: Code.Internal, rawMessage: "internal error" });
    expect(edge.cause).toBe(error);
    const passed = new ConnectError("rate limit exceeded - slow down", Code.ResourceExhausted);
    expect(toEdgeError(passed)).toBe(passed);
  });
});
