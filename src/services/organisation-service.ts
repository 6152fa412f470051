import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type OrganisationService,
  type OrganisationSettings,
  OrganisationSettingsSchema,
} from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import { invalid } from "../errors.js";
import { MAX_ALLOWED_RETURN_URLS, parseAllowedReturnUrl } from "../oauth/return-url.js";
import type { OrganisationDocument, OrganisationStore } from "../store/organisations.js";
import { requireIdentifier } from "../validation.js";

export function organisationService(organisations: OrganisationStore): ServiceImpl<typeof OrganisationService> {
  return {
    async getOrganisationSettings(req) {
      const organisationId = requireIdentifier(req.organisationId, "organisation_id");
      return { settings: toSettings(organisationId, await organisations.findById(organisationId)) };
    },

    async updateOrganisationSettings(req) {
      const input = req.settings ?? invalid("settings", "is required");
      const organisationId = requireIdentifier(input.organisationId, "settings.organisation_id");
      const paths = req.updateMask?.paths ?? [];
      if (paths.length === 0) invalid("update_mask", "must name at least one field");
      const changes: Partial<OrganisationDocument> = {};
      for (const path of new Set(paths)) {
        if (path !== "allowed_return_urls") invalid("update_mask", `names "${path.slice(0, 64)}" that cannot be updated`);
        if (input.allowedReturnUrls.length > MAX_ALLOWED_RETURN_URLS) {
          invalid("settings.allowed_return_urls", `must have at most ${MAX_ALLOWED_RETURN_URLS} entries`);
        }
        changes.allowed_return_urls = [
          ...new Set(input.allowedReturnUrls.map((url, i) => parseAllowedReturnUrl(url, `settings.allowed_return_urls[${i}]`))),
        ];
      }
      return { settings: toSettings(organisationId, await organisations.update(organisationId, changes)) };
    },
  };
}

function toSettings(organisationId: string, document: OrganisationDocument | null): OrganisationSettings {
  return create(OrganisationSettingsSchema, {
    organisationId,
    allowedReturnUrls: document?.allowed_return_urls ?? [],
    updateTime: document ? timestampFromDate(document.update_time) : undefined,
  });
}
