import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { v7 as uuidv7 } from "uuid";
import { type ApiKey, ApiKeySchema, type ApiKeyService } from "../../gen/oauth2broker/v1/api_key_service_pb.js";
import { generateApiKey } from "../auth/api-keys.js";
import { requireAdmin } from "../auth/caller.js";
import { invalid, notFound } from "../errors.js";
import type { ApiKeyDocument, ApiKeyStore } from "../store/api-keys.js";
import { requirePresent } from "../validation.js";

export function apiKeyService(apiKeys: ApiKeyStore): ServiceImpl<typeof ApiKeyService> {
  return {
    async createApiKey(req, ctx) {
      requireAdmin(ctx);
      const { name } = req;
      if (req.admin && req.organisationId !== "") invalid("organisation_id", "must be empty for an admin key");
      const organisationId = req.admin ? undefined : requirePresent(req.organisationId, "organisation_id");
      const expireTime = req.expireTime === undefined ? undefined : timestampDate(req.expireTime);
      if (expireTime !== undefined && expireTime <= new Date()) invalid("expire_time", "must be in the future");
      const { key, prefix, hash } = generateApiKey();
      const document: ApiKeyDocument = { _id: uuidv7(), key_hash: hash, prefix, name, admin: req.admin, create_time: new Date() };
      if (organisationId !== undefined) document.organisation_id = organisationId;
      if (expireTime !== undefined) document.expire_time = expireTime;
      await apiKeys.insert(document);
      return { apiKey: toApiKey(document), key };
    },

    async listApiKeys(req, ctx) {
      requireAdmin(ctx);
      const organisationId = req.organisationId === "" ? undefined : req.organisationId;
      return { apiKeys: (await apiKeys.list(organisationId)).map(toApiKey) };
    },

    async revokeApiKey(req, ctx) {
      requireAdmin(ctx);
      const document = await apiKeys.revoke(req.id);
      if (document === null) throw notFound("api key");
      return { apiKey: toApiKey(document) };
    },
  };
}

function toApiKey(document: ApiKeyDocument): ApiKey {
  return create(ApiKeySchema, {
    id: document._id,
    prefix: document.prefix,
    name: document.name,
    organisationId: document.organisation_id ?? "",
    admin: document.admin,
    createTime: timestampFromDate(document.create_time),
    expireTime: document.expire_time ? timestampFromDate(document.expire_time) : undefined,
    revokeTime: document.revoke_time ? timestampFromDate(document.revoke_time) : undefined,
  });
}
