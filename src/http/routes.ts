import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { sendPage } from "./pages.js";

export type HttpHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
export type HttpRequest = Parameters<HttpHandler>[0];
export type HttpResponse = Parameters<HttpHandler>[1];

export interface BrowserRoutes {
  /** GET /oauth2/callback */
  callback(req: HttpRequest, res: HttpResponse): Promise<void>;
}

/**
 * Browser-facing routes on the HTTP gateway, served for every path the RPC router does not know.
 * A tiny router: the paths are few and fixed.
 */
export function httpRoutes(routes: BrowserRoutes, onError: (error: unknown) => void): HttpHandler {
  return (req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path === "/oauth2/callback") {
      routes.callback(req, res).catch((error: unknown) => {
        onError(error);
        if (!res.headersSent) sendPage(res, 500, "Something went wrong", ["Please try again later."]);
      });
      return;
    }
    sendPage(res, 404, "Not found", ["There is nothing at this address."]);
  };
}
