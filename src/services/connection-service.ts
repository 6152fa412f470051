
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type ConnectionService, RevocationOutcome } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import type { ConnectionLifecycle, RevocationResult } from "../connections/connection-lifecycle.js";
import { connectionNotFound } from "../connections/connection-errors.js";
import type { TokenRefresher } from "../connections/token-refresher.js";
import { toConnectionEvent, toConnectionStatus } from "../events/connection-events.js";
import type { EventStore } from "../store/events.js";
import { fromConnectionStatus, toConnection, toProviderApi } from "./connection-views.js";
import { decodePageToken, pageOf, pageSize } from "./page-token.js";
import { type InitialiseDeps, initialiseOAuth2Connection } from "./initialise-connection.js";
import { requireOrganisation } from "../auth/caller.js";
import { releaseWorkSlots } from "../interceptors/rate-limit.js";
import { streamSignal } from "../interceptors/stream-limits.js";
import type { EventFeed } from "../events/event-feed.js";

export interface ConnectionServiceDeps extends InitialiseDeps {
  events: EventStore;
  /** Every connection write (confirm, delete) goes through it. */
  lifecycle: ConnectionLifecycle;
  refresher: TokenRefresher;
  /** Published events, for WatchConnectionEvents (one shared poll per organisation). */
  eventFeed: EventFeed;
}

/** Every ConnectionService method but StartDeviceAuthorization (device-authorization-service.ts). */
export function connectionService(deps: ConnectionServiceDeps): Omit<ServiceImpl<typeof ConnectionService>, "startDeviceAuthorization"> {
  return {
    initialiseOAuth2Connection: (req, ctx) => initialiseOAuth2Connection(deps, req, ctx),

    async getConnection(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "connection");
      const connection = await deps.connections.findById(req.organisationId, req.id);
      if (connection === null) throw connectionNotFound();
      return { connection: toConnection(connection) };
    },

    async listConnections(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      const size = pageSize(req.pageSize);
      const beforeId = req.pageToken === "" ? undefined : decodePageToken(req.pageToken);
      const filter = {
        connectorId: req.connectorId === "" ? undefined : req.connectorId,
        credentialId: req.credentialId === "" ? undefined : req.credentialId,
        status: fromConnectionStatus(req.status),
      };
      const { shown, nextPageToken } = pageOf(await deps.connections.list(organisationId, filter, beforeId, size + 1), size);
      return { connections: shown.map(toConnection), nextPageToken };
    },

    async getAccessToken(req, ctx) {
      const { organisationId, connectionId } = req;
      requireOrganisation(ctx, organisationId, "connection");
      const token = await deps.refresher.getAccessToken(organisationId, connectionId, {
        force: req.forceRefresh,
        // Waiting on another call's refresh is no work of this call's own: it gives its slots back.
        onSharedWait: () => releaseWorkSlots(ctx.values),
      });
      return {
        accessToken: token.accessToken,
        tokenType: token.tokenType,
        expireTime: token.expireTime ? timestampFromDate(token.expireTime) : undefined,
        metadata: token.metadata,
        apiBaseUrl: token.api?.base_urls[0]?.url ?? "",
        api: toProviderApi(token.api),
      };
    },

    async confirmConnection(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "connection");
      return { connection: toConnection(await deps.lifecycle.confirm(req.organisationId, req.connectionId, req.endUserId, req.confirmation)) };
    },

    async deleteConnection(req, ctx) {
      requireOrganisation(ctx, req.organisationId, "connection");
      const result = await deps.lifecycle.delete(req.organisationId, req.id, { revoke: req.revoke, keepIfRevocationFails: req.keepIfRevocationFails });
      return { revocation: REVOCATION_OUTCOMES[result.outcome], revocationError: result.outcome === "failed" ? result.error : "" };
    },

    async listConnectionEvents(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      const connectionId = req.connectionId === "" ? undefined : req.connectionId;
      const size = pageSize(req.pageSize);
      const beforeId = req.pageToken === "" ? undefined : decodePageToken(req.pageToken);
      const { shown, nextPageToken } = pageOf(await deps.events.list(organisationId, connectionId, beforeId, size + 1), size);
      return { events: shown.map(toConnectionEvent), nextPageToken };
    },

    async countConnections(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      const { byStatus, failingCredentialIds } = await deps.connections.counts(organisationId, MAX_FAILING_COUNTED);
      const byCredential: Record<string, bigint> = {};
      for (const credentialId of failingCredentialIds) byCredential[credentialId] = (byCredential[credentialId] ?? 0n) + 1n;
      return {
        counts: [...byStatus].map(([status, count]) => ({ status: toConnectionStatus(status), count: BigInt(count) })),
        failingConnectionsByCredential: byCredential,
      };
    },

    async *watchConnectionEvents(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "organisation");
      for await (const event of deps.eventFeed.follow(organisationId, streamSignal(ctx))) yield { event: toConnectionEvent(event) };
    },
  };
}

const REVOCATION_OUTCOMES: Record<RevocationResult["outcome"], RevocationOutcome> = {
  not_requested: RevocationOutcome.UNSPECIFIED,
  revoked: RevocationOutcome.REVOKED,
  failed: RevocationOutcome.FAILED,
  not_supported: RevocationOutcome.NOT_SUPPORTED,
};

/** CountConnections reads at most this many failing connections to group them by credential. */
const MAX_FAILING_COUNTED = 10_000;
