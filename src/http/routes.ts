import type { HttpHandler, HttpResponse, HttpRoute } from "./http-types.js";
import { sendPage } from "./pages.js";


/** A route for one exact path. */
export function exactRoute(path: string, handle: HttpRoute["handle"]): HttpRoute {
  return { matches: (candidate) => candidate === path, handle };
}

/**
 * The HTTP gateway's own routes (the OAuth callback, the REST mapping, the OpenAPI document),
 * served for every path the RPC router does not know. A tiny router: the paths are few and fixed.
 */
export function httpRoutes(routes: readonly HttpRoute[], onError: (error: unknown) => void): HttpHandler {
  return (req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
    const route = routes.find((candidate) => candidate.matches(path));
    if (route === undefined) return sendPage(res, 404, "Not found", ["There is nothing at this address."]);
    route.handle(req, res).catch((error: unknown) => {
      onError(error);
      if (!res.headersSent) sendPage(res, 500, "Something went wrong", ["Please try again later."]);
    });
  };
}

/** Sends a whole, uncached body: the gateway's plain-text and JSON answers. */
export function sendBody(res: HttpResponse, status: number, contentType: string, body: string): void {
  res.setHeader("Content-Type", contentType);
  res.setHeader("Cache-Control", "no-store");
  res.writeHead(status);
  res.end(body);
}
