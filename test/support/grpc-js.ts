import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";

/**
 * An independent gRPC client: @grpc/grpc-js with the .proto files loaded at run time, sharing no
 * code with the broker or its generated TypeScript. What a team in another language would see.
 */
const definition = protoLoader.loadSync(
  ["oauth2broker/v1/connection_service.proto", "oauth2broker/v1/credential_service.proto", "grpc/health/v1/health.proto"],
  {
    includeDirs: [fileURLToPath(new URL("../../proto", import.meta.url))],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  },
);
const loaded = grpc.loadPackageDefinition(definition) as any;

export interface GrpcJsClients {
  connections: any;
  credentials: any;
  health: any;
  close(): void;
}

export function grpcJsClients(port: number): GrpcJsClients {
  const address = `127.0.0.1:${port}`;
  const insecure = grpc.credentials.createInsecure();
  const connections = new loaded.oauth2broker.v1.ConnectionService(address, insecure);
  const credentials = new loaded.oauth2broker.v1.CredentialService(address, insecure);
  const health = new loaded.grpc.health.v1.Health(address, insecure);
  return {
    connections,
    credentials,
    health,
    close() {
      connections.close();
      credentials.close();
      health.close();
    },
  };
}

export function bearer(token: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/** Calls a unary method and resolves with its response, or with the ServiceError it failed with. */
export function unary<T = any>(
  client: any,
  method: string,
  request: unknown,
  metadata = new grpc.Metadata(),
): Promise<{ response?: T; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    client[method](request, metadata, (error: grpc.ServiceError | null, response: T) => {
      resolve(error ? { error } : { response });
    });
  });
}

export { grpc };
