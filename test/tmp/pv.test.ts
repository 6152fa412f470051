import { create, createRegistry } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { CountConnectionsRequestSchema } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import { file_oauth2broker_v1_rules } from "../../gen/oauth2broker/v1/rules_pb.js";
import { it } from "vitest";
it("x", () => {
const v = createValidator({ registry: createRegistry(file_oauth2broker_v1_rules) });
for (const id of ["acme", "acme", "acme", "quirks", "c", "c", "ab"]) {
  const r = v.validate(CountConnectionsRequestSchema, create(CountConnectionsRequestSchema, { organisationId: id }));
  console.log(id, r.kind, r.violations?.map((x) => `${pathToString(x.field)}: ${x.message}`));
}
});
