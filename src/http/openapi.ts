import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { exactRoute } from "./routes.js";
import type { HttpRoute } from "./http-types.js";

/**
 * GET /openapi.json: the OpenAPI 3 document generated from the proto's google.api.http mappings
 * (gen/openapi/openapi.yaml, by gnostic's protoc-gen-openapi), with the bearer authentication
 * every call needs. Read once at start-up.
 */
export function openApiRoute(root: string): HttpRoute {
  // biome-ignore lint/suspicious/noExplicitAny: a parsed YAML document, walked by key
  const document = parse(readFileSync(join(root, "gen/openapi/openapi.yaml"), "utf8")) as Record<string, any>;
  document.info = { ...document.info, title: "oauth2-broker REST API" };
  document.components = { ...document.components, securitySchemes: { bearer: { type: "http", scheme: "bearer" } } };
  document.security = [{ bearer: [] }];
  const body = JSON.stringify(document);
  return exactRoute("/openapi.json", async (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET" });
      res.end();
      return;
    }
    res.setHeader("Content-Type", "application/json");
    res.setHeader("Cache-Control", "public, max-age=300");
    res.writeHead(200);
    if (req.method === "HEAD") res.end();
    else res.end(body);
  });
}
