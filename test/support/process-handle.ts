import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { BrokerProcess } from "./broker-process.js";
import type { BrokerHandle } from "./connect-flow.js";
import type { Database } from "../../src/store/database.js";

/** A BrokerHandle for a broker running as its own process, sharing the test's database handle. */
export function processHandle(broker: BrokerProcess, database: Database): BrokerHandle {
  const httpUrl = `http://127.0.0.1:${broker.httpPort}`;
  return {
    httpUrl,
    database,
    connect: (service) =>
      createClient(
        service,
        createConnectTransport({
          baseUrl: httpUrl,
          httpVersion: "1.1",
          interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${broker.adminToken}`), next(req))],
        }),
      ),
  };
}
