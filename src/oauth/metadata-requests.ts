/** A documented request made with a new access token, whose answer fills connection metadata. */
export interface MetadataRequest {
  /** The rendered URL (template values filled in). */
  url: string;
  method: "GET" | "POST";
  /** `Authorization: <tokenScheme> <token>` (Mailchimp's metadata endpoint wants `OAuth`). */
  tokenScheme: string;
  headers: Readonly<Record<string, string>>;
  /** Metadata key -> dotted path into the JSON answer; a numeric segment indexes an array (`0.tenantId`). */
  response: Readonly<Record<string, string>>;
}

/** The longest metadata value kept from such an answer: these values are the provider's, untrusted. */
export const MAX_METADATA_VALUE_LENGTH = 512;

/**
 * Makes each request in order with the access token and reads the named values: Mailchimp's
 * metadata endpoint (`dc`, `api_endpoint`), Xero's `/connections` (the tenant), Atlassian's
 * accessible resources (the cloud ID). Values are scalars of at most MAX_METADATA_VALUE_LENGTH
 * characters without control characters; anything else is left out. A request that fails leaves its values out and
 * is reported in `failed` (by index, never with the token), so the connection is still made.
 */
export async function fetchMetadata(
  requests: readonly MetadataRequest[],
  accessToken: string,
  fetchImpl: typeof fetch,
): Promise<{ metadata: Record<string, string>; failed: Array<{ index: number; reason: string }> }> {
  const metadata: Record<string, string> = {};
  const failed: Array<{ index: number; reason: string }> = [];
  for (const [index, request] of requests.entries()) {
    try {
      const headers = new Headers(request.headers);
      headers.set("authorization", `${request.tokenScheme} ${accessToken}`);
      if (!headers.has("accept")) headers.set("accept", "application/json");
      const response = await fetchImpl(request.url, { method: request.method, headers, redirect: "manual" });
      const text = await response.text();
      if (response.status < 200 || response.status > 299) {
        failed.push({ index, reason: `HTTP ${response.status}` });
        continue;
      }
      const body: unknown = JSON.parse(text);
      for (const [key, path] of Object.entries(request.response)) {
        const value = valueAtPath(body, path);
        if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") continue;
        const text = String(value);
        if (text !== "" && text.length <= MAX_METADATA_VALUE_LENGTH && !/[\u0000-\u001f\u007f]/.test(text)) metadata[key] = text;
      }
    } catch (error) {
      failed.push({ index, reason: error instanceof SyntaxError ? "not JSON" : ((error as Error).name ?? "error") });
    }
  }
  return { metadata, failed };
}

/** A dotted path into parsed JSON; a numeric segment indexes an array. */
export function valueAtPath(root: unknown, path: string): unknown {
  let value = root;
  for (const segment of path.split(".")) {
    if (Array.isArray(value) && /^(0|[1-9][0-9]{0,5})$/.test(segment)) value = value[Number(segment)];
    else if (typeof value === "object" && value !== null && !Array.isArray(value) && Object.hasOwn(value, segment)) value = (value as Record<string, unknown>)[segment];
    else return undefined;
  }
  return value;
}
