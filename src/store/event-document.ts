import type { ConnectionEventType, ConnectionStatus } from "./connections.js";

export type DeliveryState = "pending" | "delivered" | "no_webhook" | "failed";

/** A published connection event, and the state of its webhook delivery. */
export interface EventDocument {
  _id: string;
  type: ConnectionEventType;
  organisation_id: string;
  connection_id: string;
  connector_id: string;
  credential_id: string;
  status?: ConnectionStatus;
  status_reason?: string;
  /** When the change happened. */
  create_time: Date;
  /** When the relay published it here; WatchConnectionEvents follows this. */
  publish_time: Date;
  delivery: DeliveryState;
  attempts: number;
  next_attempt_time: Date;
  last_error?: string;
  delivered_time?: Date;
}
