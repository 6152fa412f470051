import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { ApiProxyService } from "../../gen/oauth2broker/v1/api_proxy_service_pb.js";
import { requireOrganisation } from "../auth/caller.js";
import { type ApiProxy, ProxyError } from "../connections/api-proxy.js";
import { invalid } from "../errors.js";
import { headerRefusal } from "../network/proxy-headers.js";
import { proxyTarget } from "../network/proxy-path.js";

/** The answer's body at most: gRPC clients refuse messages over 4 MiB by default. */
export const RPC_MAX_ANSWER_BYTES = 4 * 1024 * 1024 - 64 * 1024;
const METHOD = /^[A-Z]{1,16}$/;
const MAX_HEADERS = 100;
const DEFAULT_RETRY_WAIT_MS = 10_000;

/** ProxyError statuses as gRPC codes. */
function codeOf(error: ProxyError): Code {
  if (error.status === 400) return Code.InvalidArgument;
  if (error.status === 403) return Code.PermissionDenied;
  if (error.status === 404) return Code.NotFound;
  if (error.status === 409) return Code.FailedPrecondition;
  if (error.status === 413 || error.status === 429 || error.status === 431) return Code.ResourceExhausted;
  if (error.status === 504) return Code.DeadlineExceeded;
  return Code.Unavailable;
}

async function* once(body: Uint8Array): AsyncGenerator<Uint8Array> {
  yield body;
}

/** CallApi: the HTTP proxy's rules, with the request and answer as messages (see ApiProxy). */
export function apiProxyService(proxy: ApiProxy): ServiceImpl<typeof ApiProxyService> {
  return {
    async callApi(req, ctx) {
      // organisation_id and connection_id are checked by the contract's rules (protovalidate).
      const { organisationId, connectionId } = req;
      requireOrganisation(ctx, organisationId, "connection");
      const method = req.method === "" ? "GET" : req.method;
      if (!METHOD.test(method)) invalid("method", "must be an HTTP method in capitals (GET, POST, …)");
      if (req.path !== "" && !req.path.startsWith("/")) invalid("path", 'must start with "/"');
      // Checked apart, so the refusal names the field at fault.
      const query = proxyTarget("/", req.query);
      if ("refusal" in query) invalid("query", query.refusal.replace(/^the (path or query|path) /, ""));
      const target = proxyTarget(req.path, req.query);
      if ("refusal" in target) invalid("path", target.refusal.replace(/^the (path or query|path) /, ""));
      if (req.headers.length > MAX_HEADERS) invalid("headers", `must have at most ${MAX_HEADERS} entries`);
      for (const [index, header] of req.headers.entries()) {
        const refusal = headerRefusal(header.name, header.value);
        if (refusal !== undefined) invalid(`headers[${index}]`, refusal.replaceAll('"', "'"));
      }
      const maxWaitMs = req.retry?.maxWait === undefined ? DEFAULT_RETRY_WAIT_MS : durationMs(req.retry.maxWait);
      try {
        const answer = await proxy.call({
          organisationId,
          connectionId,
          method,
          target,
          headers: req.headers.map((header) => [header.name, header.value]),
          body: req.body.byteLength === 0 && (method === "GET" || method === "HEAD") ? undefined : once(req.body),
          bodyLength: req.body.byteLength,
          retry: { attempts: req.retry?.attempts ?? 0, maxWaitMs, safe: req.retry?.safe ?? false },
          via: "grpc",
          signal: ctx.signal,
        });
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of answer.body as AsyncIterable<Buffer>) {
          size += chunk.byteLength;
          if (size > RPC_MAX_ANSWER_BYTES) {
            answer.body.destroy();
            throw new ProxyError(413, "answer_too_large", `the provider's answer is larger than ${RPC_MAX_ANSWER_BYTES} bytes - use the HTTP proxy to stream it`);
          }
          chunks.push(chunk);
        }
        return { status: answer.status, headers: answer.headers.map(([name, value]) => ({ name, value })), body: Buffer.concat(chunks) };
      } catch (error) {
        if (!(error instanceof ProxyError)) throw error;
        const details =
          error.retryAfterMs === undefined ? undefined : [{ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(Math.max(error.retryAfterMs, 1)) } }];
        throw new ConnectError(error.message.replaceAll(/[;,/?:@&=+$#]/g, " "), codeOf(error), undefined, details);
      }
    },
  };
}
