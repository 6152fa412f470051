import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type OrganisationService,
  type OrganisationSettings,
  OrganisationSettingsSchema,
} from "../../gen/oauth2broker/v1/organisation_service_pb.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { DomainError, invalid } from "../errors.js";
import { generateWebhookSecret } from "../events/webhook-signature.js";
import { parseAllowedReturnUrl } from "../oauth/return-url.js";
import type { LeaseStore } from "../store/leases.js";
import { type OrganisationDocument, organisationLeaseKey, type OrganisationStore } from "../store/organisations.js";
import { callerKey, requireOrganisation } from "../auth/caller.js";
import type { OutboundPolicy } from "../network/address-policy.js";
import { outboundUrl } from "./credential-service.js";
import { webhookSecretContext } from "../crypto/secret-contexts.js";

/** Two secrets sign each event during a rotation: the new one and the one before it. */
const VALID_WEBHOOK_SECRETS = 2;

export function organisationService(
  organisations: OrganisationStore,
  leases: LeaseStore,
  secretBox: SecretBox,
  outbound: OutboundPolicy,
  /** Every organisation that has settings, credentials, API keys or events (admins see them all). */
  knownOrganisationIds: () => Promise<string[]>,
): ServiceImpl<typeof OrganisationService> {
  /**
   * Runs one change to an organisation's settings at a time, across instances: a rotation reads
   * the secrets it extends, and FerretDB v1 cannot make that read-then-write atomic, so two
   * concurrent rotations each returned a secret while only one was stored.
   */
  async function serialised<T>(organisationId: string, change: () => Promise<T>): Promise<T> {
    const lease = await leases.acquire(organisationLeaseKey(organisationId), 10_000, 5_000);
    if (lease === null) throw new DomainError("busy", "the organisation's settings are being changed - try again");
    try {
      return await change();
    } finally {
      await leases.release(lease);
    }
  }

  return {
    async listOrganisations(_req, ctx) {
      const caller = ctx.values.get(callerKey);
      if (caller === undefined) throw new DomainError("unauthenticated", "unauthenticated");
      if (caller.kind === "organisation") return { organisationIds: [caller.organisationId], callerIsAdmin: false };
      return { organisationIds: [...new Set(await knownOrganisationIds())].sort(), callerIsAdmin: true };
    },

    async getOrganisationSettings(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      return { settings: toSettings(organisationId, await organisations.findById(organisationId)) };
    },

    async updateOrganisationSettings(req, ctx) {
      const organisationId = req.settings?.organisationId ?? "";
      requireOrganisation(ctx, organisationId, "organisation");
      const input = req.settings ?? invalid("settings", "is required");
      const paths = req.updateMask?.paths ?? [];
      if (paths.length === 0) invalid("update_mask", "must name at least one field");
      const changes: Partial<OrganisationDocument> = {};
      const clear: Array<keyof OrganisationDocument> = [];
      for (const path of new Set(paths)) {
        switch (path) {
          case "allowed_return_urls":
            changes.allowed_return_urls = [
              ...new Set(input.allowedReturnUrls.map((url, i) => parseAllowedReturnUrl(url, `settings.allowed_return_urls[${i}]`))),
            ];
            break;
          case "webhook_url":
            if (input.webhookUrl === "") clear.push("webhook_url");
            else changes.webhook_url = outboundUrl(outbound, input.webhookUrl, "settings.webhook_url");
            break;
          case "per_organisation_callback":
            // The callback path holds the ID, and a path segment "." or ".." would not survive URL resolution.
            if (input.perOrganisationCallback && (organisationId === "." || organisationId === "..")) {
              invalid("settings.per_organisation_callback", 'cannot be used by an organisation named "." or ".."');
            }
            changes.per_organisation_callback = input.perOrganisationCallback;
            break;
          default:
            invalid("update_mask", `names "${path.slice(0, 64)}" that cannot be updated`);
        }
      }
      const document = await serialised(organisationId, () => organisations.update(organisationId, changes, clear));
      return { settings: toSettings(organisationId, document) };
    },

    async rotateWebhookSecret(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      const secret = generateWebhookSecret();
      const sealed = secretBox.encrypt(secret, webhookSecretContext(organisationId));
      const stored = await serialised(organisationId, async () => {
        const previous = (await organisations.findById(organisationId))?.webhook_secrets ?? [];
        return organisations.update(organisationId, { webhook_secrets: [sealed, ...previous].slice(0, VALID_WEBHOOK_SECRETS) });
      });
      // Belt and braces should the lease have expired under a slow database: never hand out a
      // secret that is not the stored newest one.
      if (stored.webhook_secrets?.[0] !== sealed) {
        throw new DomainError("concurrent_change", "the webhook secret was changed concurrently - try again");
      }
      return { secret, webhookSecretCount: stored.webhook_secrets.length };
    },
  };
}

function toSettings(organisationId: string, document: OrganisationDocument | null): OrganisationSettings {
  return create(OrganisationSettingsSchema, {
    organisationId,
    allowedReturnUrls: document?.allowed_return_urls ?? [],
    webhookUrl: document?.webhook_url ?? "",
    webhookSecretCount: document?.webhook_secrets?.length ?? 0,
    perOrganisationCallback: document?.per_organisation_callback === true,
    webhookDeliveriesWaiting: document?.webhook_url !== undefined && (document.webhook_secrets?.length ?? 0) === 0,
    updateTime: document ? timestampFromDate(document.update_time) : undefined,
  });
}
