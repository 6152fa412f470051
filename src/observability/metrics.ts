import { collectDefaultMetrics, Counter, Histogram, Registry } from "prom-client";
import { isUnanswered } from "../network/provider-call-error.js";

/**
 * The broker's Prometheus metrics. Labels are bounded sets (RPC method, status code, outcome,
 * database command and collection): never a secret, and never an identifier of an organisation,
 * user, credential or connection.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly rpcs = new Counter({
    name: "broker_rpc_requests_total",
    help: "RPCs handled, by method and status code.",
    labelNames: ["method", "code"] as const,
    registers: [this.registry],
  });

  readonly rpcDuration = new Histogram({
    name: "broker_rpc_duration_seconds",
    help: "RPC latency, by method and status code.",
    labelNames: ["method", "code"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });

  readonly malformedRequests = new Counter({
    name: "broker_rpc_malformed_requests_total",
    help: "RPCs refused because the request message was not valid protobuf, by method and protocol.",
    labelNames: ["method", "protocol"] as const,
    registers: [this.registry],
  });

  readonly callbacks = new Counter({
    name: "broker_callback_outcomes_total",
    help: "OAuth callbacks, by outcome (connected, invalid_state, a provider error code, token_exchange_failed, …).",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly tokenRequests = new Counter({
    name: "broker_token_requests_total",
    help: "Requests to providers' token endpoints, by kind (exchange, refresh) and outcome.",
    labelNames: ["kind", "outcome"] as const,
    registers: [this.registry],
  });

  readonly dbCommands = new Histogram({
    name: "broker_db_command_duration_seconds",
    help: "MongoDB command latency, by command, collection and outcome (oauth_states is the state store).",
    labelNames: ["command", "collection", "outcome"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [this.registry],
  });

  readonly proxyRequests = new Counter({
    name: "broker_proxy_requests_total",
    help: "Proxied provider API calls, by catalog provider (custom: none), status class and who answered (provider, broker).",
    labelNames: ["provider", "status_class", "answered_by"] as const,
    registers: [this.registry],
  });

  readonly proxyDuration = new Histogram({
    name: "broker_proxy_duration_seconds",
    help: "Proxied provider API call duration, bodies included, by catalog provider, status class and who answered.",
    labelNames: ["provider", "status_class", "answered_by"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "broker_" });
  }
}

/** Known callback outcomes; anything else (a provider's own error code) is counted as `provider_error`. */
const CALLBACK_OUTCOMES = new Set([
  "connected",
  "reauthorized",
  "pending_confirmation",
  "invalid_state",
  "wrong_callback",
  "invalid_request",
  "credential_changed",
  "issuer_mismatch",
  "token_exchange_failed",
  "invalid_id_token",
  "account_mismatch",
  "account_unverified",
  "connection_not_found",
  "invalid_callback_signature",
  "invalid_callback_value",
  "server_error",
  "rate_limited",
]);

export function callbackOutcomeLabel(outcome: string): string {
  return CALLBACK_OUTCOMES.has(outcome) ? outcome : "provider_error";
}

/** Counts a token endpoint request by outcome: ok, provider_error (it answered badly) or unreachable. */
export async function countTokenRequest<T>(metrics: Metrics, kind: "exchange" | "refresh", request: Promise<T>): Promise<T> {
  try {
    const result = await request;
    metrics.tokenRequests.inc({ kind, outcome: "ok" });
    return result;
  } catch (error) {
    metrics.tokenRequests.inc({ kind, outcome: isUnanswered(error) ? "unreachable" : "provider_error" });
    throw error;
  }
}
