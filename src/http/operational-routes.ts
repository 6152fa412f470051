import { HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import type { Metrics } from "../observability/metrics.js";
import type { HealthMonitor } from "../services/health-service.js";
import { exactRoute, sendBody } from "./routes.js";
import type { HttpRoute } from "./http-types.js";

const TEXT = "text/plain; charset=utf-8";

/**
 * For operators and orchestrators, on the HTTP gateway: Prometheus metrics, liveness (the process
 * answers) and readiness (it can serve: the database answers). Expose them only inside the
 * cluster; they hold no secrets or user identifiers, but no one outside needs them.
 */
export function operationalRoutes(metrics: Metrics, health: HealthMonitor): HttpRoute[] {
  return [
    exactRoute("/metrics", async (_req, res) => {
      sendBody(res, 200, metrics.registry.contentType, await metrics.registry.metrics());
    }),
    exactRoute("/healthz", async (_req, res) => sendBody(res, 200, TEXT, "ok\n")),
    exactRoute("/readyz", async (_req, res) => {
      const ready = health.status === Status.SERVING;
      sendBody(res, ready ? 200 : 503, TEXT, ready ? "ready\n" : "not ready: the database is unreachable\n");
    }),
  ];
}
