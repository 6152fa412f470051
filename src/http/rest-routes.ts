import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { sendBody } from "./routes.js";
import type { HttpRequest, HttpResponse } from "./http-types.js";

const INITIALISE = /^\/o\/([^/?]+)\/connectors\/([^/?]+)\/oauth2\/initialise$/;

/**
 * Plain HTTP+JSON for callers without a gRPC or Connect client:
 * `POST /o/{organisation_id}/connectors/{connector_id}/oauth2/initialise` (the google.api.http
 * mapping in the proto, which the OpenAPI document is generated from). The path parameters join
 * the JSON body and the request runs through the same Connect handler, interceptors included
 * (authentication, rate limits, logging), so rules, auth and errors are the RPC's; errors come
 * back as Connect's `{"code", "message", "details"}` with the HTTP status of the code.
 */
export function restInitialiseRoute(handler: UniversalHandler, maxBodyBytes: number) {
  return {
    matches: (path: string) => INITIALISE.test(path),
    async handle(req: HttpRequest, res: HttpResponse): Promise<void> {
      const [, organisationId, connectorId] = INITIALISE.exec((req.url ?? "").split("?", 1)[0] ?? "") ?? [];
      if (req.method !== "POST") return sendError(res, 405, "unimplemented", "use POST");
      let body: unknown;
      try {
        body = JSON.parse((await readBody(req, maxBodyBytes)).toString("utf8") || "{}");
      } catch (error) {
        if (error instanceof BodyTooLarge) return sendError(res, 429, "resource_exhausted", `body larger than ${maxBodyBytes} bytes`);
        return sendError(res, 400, "invalid_argument", "the body is not JSON");
      }
      if (typeof body !== "object" || body === null || Array.isArray(body)) {
        return sendError(res, 400, "invalid_argument", "the body must be a JSON object");
      }
      const message = { ...body, organisationId: safeDecode(organisationId), connectorId: safeDecode(connectorId) };
      const universal = await handler(universalRequestFromNodeRequest(req, res, message, undefined));
      await universalResponseToNodeResponse(universal, res);
    },
  };
}

export class BodyTooLarge extends Error {}

export async function readBody(req: HttpRequest, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function safeDecode(segment: string | undefined): string {
  try {
    return decodeURIComponent(segment ?? "");
  } catch {
    return segment ?? "";
  }
}

function sendError(res: HttpResponse, status: number, code: string, message: string): void {
  sendBody(res, status, "application/json", JSON.stringify({ code, message }));
}
