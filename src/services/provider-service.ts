import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type Provider,
  ProviderParameterLevel,
  ProviderSchema,
  type ProviderService,
} from "../../gen/oauth2broker/v1/provider_service_pb.js";
import { invalid, notFound } from "../errors.js";
import type { CatalogEntry, ProviderCatalog } from "../providers/catalog.js";
import { pageSize } from "./page-token.js";

/**
 * The provider catalog, read-only. Every authenticated caller may read it (the auth interceptor
 * has already required one); it holds public facts only.
 */
export function providerService(catalog: ProviderCatalog): ServiceImpl<typeof ProviderService> {
  return {
    async listProviders(req) {
      const size = pageSize(req.pageSize);
      // Page tokens are the last ID shown, base64url-encoded (IDs are in the catalog's order).
      const after = req.pageToken === "" ? undefined : decodeProviderPageToken(req.pageToken);
      const remaining = catalog.list().filter((entry) => after === undefined || entry.id > after);
      const shown = remaining.slice(0, size);
      const last = shown.at(-1);
      return {
        providers: shown.map(toProvider),
        nextPageToken: remaining.length > size && last !== undefined ? Buffer.from(last.id, "utf8").toString("base64url") : "",
      };
    },

    async getProvider(req) {
      const entry = catalog.get(req.id);
      if (entry === undefined) throw notFound("provider");
      return { provider: toProvider(entry) };
    },
  };
}

function decodeProviderPageToken(token: string): string {
  const id = /^[A-Za-z0-9_-]{1,100}$/.test(token) ? Buffer.from(token, "base64url").toString("utf8") : "";
  if (!/^[a-z0-9][a-z0-9-]*$/.test(id)) invalid("page_token", "is not a token from a previous page");
  return id;
}

export function toProvider(entry: CatalogEntry): Provider {
  return create(ProviderSchema, {
    id: entry.id,
    displayName: entry.display_name,
    documentationUrl: entry.documentation_url,
    scopeSeparator: entry.authorize?.scope_separator ?? " ",
    parameters: (entry.parameters ?? []).map((parameter) => ({
      name: parameter.name,
      pattern: parameter.pattern,
      description: parameter.description,
      level: parameter.level === "credential" ? ProviderParameterLevel.CREDENTIAL : ProviderParameterLevel.CONNECTION,
      defaultValue: parameter.default,
    })),
  });
}
