import { createRegistry, type DescMessage, type Message } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator, type Violation } from "@bufbuild/protovalidate";
import type { Interceptor } from "@connectrpc/connect";
import { ApiKeyService } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { file_oauth2broker_v1_rules } from "../../gen/oauth2broker/v1/rules_pb.js";
import { type Caller, callerKey, heldViolationsKey } from "../auth/caller.js";
import { InvalidInputError } from "../errors.js";

/** Services only admins may call: their handlers' `requireAdmin` answers anyone else. */
const ADMIN_SERVICES: ReadonlySet<string> = new Set([ApiKeyService.typeName]);

/**
 * Checks every request message against the rules the proto declares (`buf.validate`, with
 * @bufbuild/protovalidate) and turns the broken ones into one InvalidInputError: INVALID_ARGUMENT
 * with a `google.rpc.BadRequest` entry per broken rule, named by the field's proto path. It runs
 * after authentication; for a caller who may not act for the organisation the request names, the
 * violations wait for the handler's access check (see heldViolationsKey), which answers first.
 */
export function requestRulesInterceptor(): Interceptor {
  // The registry lets the validator read the predefined rules of rules.proto.
  const validator = createValidator({ registry: createRegistry(file_oauth2broker_v1_rules) });
  return (next) => async (req) => {
    const check = (message: Message): void => {
      const result = validator.validate(req.method.input, message);
      if (result.kind === "valid") return;
      // A rule that cannot be compiled or evaluated is a bug in the proto: INTERNAL.
      if (result.kind === "error") throw result.error;
      const error = violationsError(result.violations);
      if (!accessCheckAnswersFirst(req.contextValues.get(callerKey), req.service.typeName, req.method.input, message)) throw error;
      req.contextValues.set(heldViolationsKey, error);
    };
    if (!req.stream) {
      check(req.message);
      return next(req);
    }
    return next({ ...req, message: checkedEach(req.message, check) });
  };
}

async function* checkedEach<T extends Message>(messages: AsyncIterable<T>, check: (message: T) => void): AsyncIterable<T> {
  for await (const message of messages) {
    check(message);
    yield message;
  }
}

/**
 * Each violation's description names its field (`"credential.name" is required`), as the
 * hand-written checks did; the message is the first one's, and counts the others as protovalidate's
 * own errors do (without the comma, which grpc-js callers would see as `%2C`).
 */
function violationsError(violations: readonly Violation[]): InvalidInputError {
  const found = violations.map((violation) => {
    const field = pathToString(violation.field);
    return { field, description: `"${field}" ${violation.message.replace(/^value /, "")}` };
  });
  const [first] = found;
  if (first === undefined) throw new Error("no violations");
  const more = found.length - 1;
  const message = more === 0 ? first.description : `${first.description} and ${more} more violation${more > 1 ? "s" : ""}`;
  return new InvalidInputError(first.field, message, found);
}

function accessCheckAnswersFirst(caller: Caller | undefined, service: string, schema: DescMessage, message: Message): boolean {
  if (caller === undefined || caller.kind === "admin") return false;
  if (ADMIN_SERVICES.has(service)) return true;
  const named = organisationNamed(schema, message as unknown as Record<string, unknown>);
  return named !== undefined && named !== caller.organisationId;
}

/**
 * The organisation a request acts for: its `organisation_id`, or that of the message it carries
 * (`credential`, `settings`); undefined for requests that name none.
 */
function organisationNamed(schema: DescMessage, message: Record<string, unknown>): string | undefined {
  if (schema.field.organisationId !== undefined) return message.organisationId as string;
  for (const field of schema.fields) {
    if (field.fieldKind === "message" && field.message.field.organisationId !== undefined) {
      return (message[field.localName] as { organisationId: string } | undefined)?.organisationId ?? "";
    }
  }
  return undefined;
}
