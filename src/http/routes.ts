import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";

export type HttpHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;

/**
 * Browser-facing routes on the HTTP gateway, served for every path the RPC router does not know.
 * The OAuth callback lands here.
 */
export function httpRoutes(): HttpHandler {
  return (_req, res) => {
    res.setHeader("Cache-Control", "no-store");
    res.setHeader("Content-Type", "text/plain; charset=utf-8");
    res.writeHead(404);
    res.end("not found\n");
  };
}
