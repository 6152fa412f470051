// The gateway's HTTP types, shared by the routes and the pages they send.
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";

export type HttpHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
export type HttpRequest = Parameters<HttpHandler>[0];
export type HttpResponse = Parameters<HttpHandler>[1];

/** A non-RPC route on the HTTP gateway. */
export interface HttpRoute {
  matches(path: string): boolean;
  handle(req: HttpRequest, res: HttpResponse): Promise<void>;
}
