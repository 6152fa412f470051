import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.js";

// Field 1 (organisation_id) says 5 bytes follow; only one does.
const TRUNCATED = Uint8Array.of(0x0a, 0x05, 0x61);
const PATH = "/oauth2broker.v1.CredentialService/ListCredentials";
const GENERIC = "the request message could not be parsed";

function envelope(flags: number, payload: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + payload.length);
  frame.writeUInt8(flags, 0);
  frame.writeUInt32BE(payload.length, 1);
  frame.set(payload, 5);
  return frame;
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.close());

describe("malformed binary protobuf", () => {
  it("regression: gRPC answered with the parser's own message; now INTERNAL with a generic one, logged and counted", async () => {
    const session = http2.connect(broker.grpcUrl);
    try {
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers" });
        stream.on("trailers", resolve);
        stream.on("error", reject);
        stream.resume();
        stream.end(envelope(0, TRUNCATED));
      });
      expect(trailers["grpc-status"]).toBe("13");
      expect(decodeURIComponent(String(trailers["grpc-message"]))).toBe(GENERIC);
    } finally {
      session.close();
    }
    expect(broker.logs.filter((line) => line.outcome === "malformed_request")).toEqual([
      expect.objectContaining({ rpc: "oauth2broker.v1.CredentialService/ListCredentials", protocol: "grpc", msg: "request message could not be parsed" }),
    ]);
    const counted = (await broker.metrics.malformedRequests.get()).values;
    expect(counted).toEqual([{ labels: { method: "oauth2broker.v1.CredentialService/ListCredentials", protocol: "grpc" }, value: 1 }]);
  });

  it("answers Connect (binary) and gRPC-Web on the gateway the same way", async () => {
    const connect = await fetch(`${broker.httpUrl}${PATH}`, { method: "POST", headers: { "content-type": "application/proto" }, body: TRUNCATED });
    expect(connect.status).toBe(500);
    expect(await connect.json()).toEqual({ code: "internal", message: GENERIC });

    const grpcWeb = await fetch(`${broker.httpUrl}${PATH}`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: envelope(0, TRUNCATED),
    });
    const body = Buffer.from(await grpcWeb.arrayBuffer());
    expect(body.readUInt8(0)).toBe(0x80); // the trailer frame
    const trailers = body.subarray(5).toString("utf8");
    expect(trailers).toContain("grpc-status: 13\r\n");
    expect(trailers).toContain(`grpc-message: ${encodeURIComponent(GENERIC)}`);
    expect(trailers).not.toContain("binary");
    const counted = (await broker.metrics.malformedRequests.get()).values.map((value) => value.labels.protocol).sort();
    expect(counted).toEqual(["connect", "grpc", "grpc-web"]);
  });
});
