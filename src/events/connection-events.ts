import { create, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { v7 as uuidv7 } from "uuid";
import { type ConnectionEvent, ConnectionEventSchema, ConnectionStatus as ConnectionStatusMessage } from "../../gen/oauth2broker/v1/connection_service_pb.js";
import type { ConnectionEventType, ConnectionStatus, PendingEvent } from "../store/connections.js";
import type { EventDocument } from "../store/event-document.js";

/** A new event, to be written with the change it reports. */
export function newEvent(type: ConnectionEventType, status?: ConnectionStatus, statusReason?: string): PendingEvent {
  const event: PendingEvent = { _id: uuidv7(), type, create_time: new Date() };
  if (status !== undefined) event.status = status;
  if (statusReason !== undefined) event.status_reason = statusReason;
  return event;
}

/** The event as the API shows it (WatchConnectionEvents) and webhooks send it. */
export function toConnectionEvent(event: EventDocument): ConnectionEvent {
  return create(ConnectionEventSchema, {
    id: event._id,
    type: event.type,
    createTime: timestampFromDate(event.create_time),
    organisationId: event.organisation_id,
    connectionId: event.connection_id,
    connectorId: event.connector_id,
    credentialId: event.credential_id,
    status: toConnectionStatus(event.status),
    statusReason: event.status_reason ?? "",
  });
}

/**
 * The webhook body, in the Standard Webhooks shape: `type`, `timestamp` and the event as `data`
 * (the same fields and names as the ConnectionEvent message's JSON form).
 */
export function toWebhookPayload(event: EventDocument): { type: string; timestamp: string; data: Record<string, unknown> } {
  return {
    type: event.type,
    timestamp: event.create_time.toISOString(),
    data: toJson(ConnectionEventSchema, toConnectionEvent(event)) as Record<string, unknown>,
  };
}

/** A stored status as the contract names it. */
export function toConnectionStatus(status: ConnectionStatus | undefined): ConnectionStatusMessage {
  switch (status) {
    case "ACTIVE":
      return ConnectionStatusMessage.ACTIVE;
    case "REFRESH_FAILED":
      return ConnectionStatusMessage.REFRESH_FAILED;
    case "NEEDS_REAUTHORIZATION":
      return ConnectionStatusMessage.NEEDS_REAUTHORIZATION;
    case "PENDING":
      return ConnectionStatusMessage.PENDING;
    default:
      return ConnectionStatusMessage.UNSPECIFIED;
  }
}
