import { Agent, fetch as undiciFetch } from "undici";
import type { OutboundPolicy } from "./address-policy.js";
import { ProviderCallError } from "./provider-call-error.js";

/**
 * fetch for every call the broker makes (token endpoint, discovery, JWKS, revocation,
 * webhooks): allowed destinations only (see OutboundPolicy, checked again at connect time),
 * bounded in time and size, and never following redirects, so a slow, huge or redirecting
 * server cannot hold the broker or bounce a code and client secret somewhere else
 * (RFC 9700 §4.11, §4.12).
 */
export interface OutboundLimits {
  timeoutMs: number;
  maxResponseBytes: number;
}

export function boundedFetch({ timeoutMs, maxResponseBytes }: OutboundLimits, policy: OutboundPolicy): typeof fetch {
  // HTTP/1.1 as before: undici 8 would negotiate HTTP/2 with every provider, an untested change.
  const dispatcher = new Agent({
    connect: { lookup: policy.lookup, timeout: timeoutMs },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    allowH2: false,
  });
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const refusal = policy.refusal(url);
    if (refusal !== undefined) throw new ProviderCallError("unreachable", `refused: ${refusal}`);
    const signal = init?.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
    let response: Response;
    try {
      response = (await undiciFetch(url, { ...(init as object), redirect: "manual", signal, dispatcher })) as unknown as Response;
    } catch (error) {
      // The policy's connect-time lookup refuses with a ProviderCallError, which undici wraps.
      const refused = error instanceof Error && error.cause instanceof ProviderCallError ? error.cause : undefined;
      throw new ProviderCallError(
        "unreachable",
        refused !== undefined ? refused.message : signal.aborted ? `no response within ${timeoutMs} ms` : "request failed",
        { cause: error },
      );
    }
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel();
      throw new ProviderCallError("redirected", `redirect (HTTP ${response.status}) refused`, { status: response.status });
    }
    const body = await readCapped(response, maxResponseBytes, signal, timeoutMs);
    // Fetch forbids a body, even an empty one, on 204, 205 and 304 responses.
    const nullBody = response.status === 204 || response.status === 205 || response.status === 304;
    return new Response(nullBody ? null : body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

async function readCapped(response: Response, max: number, signal: AbortSignal, timeoutMs: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > max) {
    await response.body?.cancel();
    throw new ProviderCallError("response_too_large", `response larger than ${max} bytes`, { status: response.status });
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body ?? []) {
      size += chunk.byteLength;
      // Leaving the loop cancels the stream; cancel() itself would throw on the locked stream, which
      // made an oversized chunked body a "reading the response failed".
      if (size > max) throw new ProviderCallError("response_too_large", `response larger than ${max} bytes`, { status: response.status });
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof ProviderCallError) throw error;
    throw new ProviderCallError("unreachable", signal.aborted ? `no response within ${timeoutMs} ms` : "reading the response failed", { cause: error });
  }
  return Buffer.concat(chunks);
}
