import { Code, type ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";

/** What a client is told when its request message is not valid binary protobuf. */
export const REQUEST_PARSE_ERROR_MESSAGE = "the request message could not be parsed";

/** connect-es's own message for a request that is not valid binary protobuf. */
const PARSER_MESSAGE = /^parse binary: /;

/**
 * connect-es parses the request message before any interceptor runs and answers a malformed one
 * with the parser's own words (`parse binary: premature EOF`), unauthenticated, unlogged and
 * uncounted. This wraps every handler of the router so that such an answer keeps its code,
 * INTERNAL, which gRPC's status code guide gives for "Error parsing request proto"
 * (https://grpc.github.io/grpc/core/md_doc_statuscodes.html), but says only
 * REQUEST_PARSE_ERROR_MESSAGE, and reports it to `onParseError` (logs and metrics). It sits on the
 * router's public handler list, so it needs no private connect-es code; each protocol carries the
 * status its own way: gRPC in trailers, gRPC-Web in a trailer frame, Connect in a JSON body (unary)
 * or end-of-stream frame (streams).
 */
export function hideRequestParseErrors(router: ConnectRouter, onParseError: (rpc: string, protocol: string) => void): void {
  router.handlers.forEach((handler, i) => {
    const rpc = `${handler.service.typeName}/${handler.method.name}`;
    const guarded = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
      const res = await handler(req);
      if (res.body === undefined) return res;
      const protocol = protocolOf(req.header.get("content-type") ?? "");
      return { ...res, body: rewritten(res, protocol, () => onParseError(rpc, protocol)) };
    };
    router.handlers[i] = Object.assign(guarded, handler);
  });
}

function protocolOf(contentType: string): "grpc" | "grpc-web" | "connect-stream" | "connect" {
  if (/^application\/grpc-web/i.test(contentType)) return "grpc-web";
  if (/^application\/grpc/i.test(contentType)) return "grpc";
  if (/^application\/connect\+/i.test(contentType)) return "connect-stream";
  return "connect";
}

async function* rewritten(res: UniversalServerResponse, protocol: string, report: () => void): AsyncGenerator<Uint8Array> {
  const body = res.body as AsyncIterable<Uint8Array>;
  if (protocol === "grpc") {
    yield* body;
    // Trailers are written after the body, so they can still be changed here.
    const message = res.trailer?.get("grpc-message");
    if (res.trailer?.get("grpc-status") === String(Code.Internal) && message != null && PARSER_MESSAGE.test(decodeURIComponent(message))) {
      res.trailer.set("grpc-message", encodeURIComponent(REQUEST_PARSE_ERROR_MESSAGE));
      report();
    }
    return;
  }
  if (protocol === "connect") {
    if (res.status === 200) return yield* body;
    // A Connect unary error: one small JSON body (https://connectrpc.com/docs/protocol#error-end-stream).
    const chunks: Uint8Array[] = [];
    for await (const chunk of body) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString("utf8");
    const error = parseJson(text);
    if (error?.code === "internal" && typeof error.message === "string" && PARSER_MESSAGE.test(error.message)) {
      report();
      const replaced = Buffer.from(JSON.stringify({ ...error, message: REQUEST_PARSE_ERROR_MESSAGE }));
      // Headers are written with the first chunk, so the length can still be corrected.
      res.header?.set("content-length", String(replaced.length));
      yield replaced;
    } else {
      yield Buffer.from(text);
    }
    return;
  }
  // Enveloped: each chunk is one frame; the last (flag 0x80 gRPC-Web trailers, 0x02 Connect end of
  // stream) carries the status, uncompressed.
  for await (const chunk of body) {
    const flags = chunk[0] ?? 0;
    if ((flags & 0x82) === 0 || (flags & 0x01) !== 0) {
      yield chunk;
      continue;
    }
    const text = Buffer.from(chunk.subarray(5)).toString("utf8");
    const replaced = flags & 0x80 ? grpcWebTrailers(text) : connectEndStream(text);
    if (replaced === undefined) {
      yield chunk;
      continue;
    }
    report();
    const payload = Buffer.from(replaced);
    const frame = Buffer.alloc(5);
    frame.writeUInt8(flags, 0);
    frame.writeUInt32BE(payload.length, 1);
    yield Buffer.concat([frame, payload]);
  }
}

function grpcWebTrailers(text: string): string | undefined {
  const lines = text.split("\r\n");
  const status = lines.find((line) => line.toLowerCase().startsWith("grpc-status:"));
  const index = lines.findIndex((line) => line.toLowerCase().startsWith("grpc-message:"));
  const message = lines[index]?.slice("grpc-message:".length).trim();
  if (status?.split(":")[1]?.trim() !== String(Code.Internal) || message === undefined || !PARSER_MESSAGE.test(decodeURIComponent(message))) {
    return undefined;
  }
  lines[index] = `grpc-message: ${encodeURIComponent(REQUEST_PARSE_ERROR_MESSAGE)}`;
  return lines.join("\r\n");
}

function connectEndStream(text: string): string | undefined {
  const end = parseJson(text);
  const error = end?.error as Record<string, unknown> | undefined;
  if (error?.code !== "internal" || typeof error.message !== "string" || !PARSER_MESSAGE.test(error.message)) return undefined;
  return JSON.stringify({ ...end, error: { ...error, message: REQUEST_PARSE_ERROR_MESSAGE } });
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
