import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the API received, as it arrived (the raw target, every header, the body's size and hash). */
export interface ApiRequest {
  method: string;
  /** The request target exactly as sent (path and query, nothing decoded). */
  target: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  bodyBytes: number;
  bodySha256: string;
}

/** What the API answers one request with; the default answers 200 with a small JSON body. */
export type ApiHandler = (request: ApiRequest, res: ServerResponse, req: IncomingMessage) => void | Promise<void>;

/**
 * A provider API on loopback that a test scripts: it records what it receives (the token, the
 * headers, the body) and answers as the handler says, so a test can check exactly what the proxy
 * sent and what the caller got back.
 */
export class ScriptedApi {
  readonly requests: ApiRequest[] = [];
  handler: ApiHandler = (_request, res) => void res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
  #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(host = "127.0.0.1"): Promise<ScriptedApi> {
    const api = new ScriptedApi(createServer());
    api.#server.on("request", (req, res) => void api.#handle(req, res));
    await new Promise<void>((resolve) => api.#server.listen(0, host, resolve));
    return api;
  }

  get origin(): string {
    const { address, port } = this.#server.address() as AddressInfo;
    return `http://${address}:${port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const hash = createHash("sha256");
    let bodyBytes = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bodyBytes += chunk.byteLength;
    }
    const request: ApiRequest = {
      method: req.method ?? "",
      target: req.url ?? "",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyBytes,
      bodySha256: hash.digest("hex"),
    };
    this.requests.push(request);
    try {
      await this.handler(request, res, req);
    } catch {
      res.destroy();
    }
  }
}
