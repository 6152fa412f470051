import { type DescFile, type DescMessage, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import type { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/**
 * gRPC server reflection (grpc.reflection.v1, and v1alpha for older tools): lets grpcurl and
 * similar clients list the services and fetch their descriptors, with no .proto files given.
 * Answers from the descriptors embedded in the generated code.
 */
export function reflectionService(services: readonly DescService[]): ServiceImpl<typeof ReflectionV1> & ServiceImpl<typeof ReflectionV1Alpha> {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const addFile = (file: DescFile): void => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    file.dependencies.forEach(addFile);
    for (const service of file.services) {
      symbols.set(service.typeName, file);
      for (const method of service.methods) symbols.set(`${service.typeName}.${method.name}`, file);
    }
    const addMessage = (message: DescMessage): void => {
      symbols.set(message.typeName, file);
      message.nestedMessages.forEach(addMessage);
      for (const nested of message.nestedEnums) symbols.set(nested.typeName, file);
    };
    file.messages.forEach(addMessage);
    for (const enumeration of file.enums) symbols.set(enumeration.typeName, file);
  };
  for (const service of services) addFile(service.file);

  /** The file and everything it imports, each once, as serialized FileDescriptorProtos. */
  const withDependencies = (file: DescFile): Uint8Array[] => {
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const visit = (current: DescFile): void => {
      if (seen.has(current.proto.name)) return;
      seen.add(current.proto.name);
      out.push(toBinary(FileDescriptorProtoSchema, current.proto));
      current.dependencies.forEach(visit);
    };
    visit(file);
    return out;
  };

  type Request = { host: string; messageRequest: { case: string | undefined; value?: unknown } };
  const answer = (request: Request) => {
    const found = (file: DescFile | undefined, what: string) =>
      file === undefined
        ? { case: "errorResponse" as const, value: { errorCode: 5, errorMessage: `${what} not found` } }
        : { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: withDependencies(file) } };
    const { case: kind, value } = request.messageRequest;
    switch (kind) {
      case "listServices":
        return { case: "listServicesResponse" as const, value: { service: services.map((s) => ({ name: s.typeName })) } };
      case "fileByFilename":
        return found(files.get(String(value)), "file");
      case "fileContainingSymbol":
        return found(symbols.get(String(value)), "symbol");
      case "allExtensionNumbersOfType":
        return { case: "allExtensionNumbersResponse" as const, value: { baseTypeName: String(value), extensionNumber: [] } };
      default:
        return { case: "errorResponse" as const, value: { errorCode: 12, errorMessage: "not implemented" } };
    }
  };

  return {
    async *serverReflectionInfo(requests: AsyncIterable<Request>) {
      for await (const request of requests) {
        yield { validHost: request.host, originalRequest: request, messageResponse: answer(request) } as never;
      }
    },
  };
}
