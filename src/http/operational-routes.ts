import { HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import type { Metrics } from "../observability/metrics.js";
import type { HealthMonitor } from "../services/health-service.js";
import { exactRoute, type HttpResponse, type HttpRoute } from "./routes.js";

/**
 * For operators and orchestrators, on the HTTP gateway: Prometheus metrics, liveness (the process
 * answers) and readiness (it can serve: the database answers). Expose them only inside the
 * cluster; they hold no secrets or user identifiers, but no one outside needs them.
 */
export function operationalRoutes(metrics: Metrics, health: HealthMonitor): HttpRoute[] {
  return [
    exactRoute("/metrics", async (_req, res) => {
      text(res, 200, await metrics.registry.metrics(), metrics.registry.contentType);
    }),
    exactRoute("/healthz", async (_req, res) => text(res, 200, "ok\n")),
    exactRoute("/readyz", async (_req, res) => {
      const ready = health.status === Status.SERVING;
      text(res, ready ? 200 : 503, ready ? "ready\n" : "not ready: the database is unreachable\n");
    }),
  ];
}

function text(res: HttpResponse, status: number, body: string, type = "text/plain; charset=utf-8"): void {
  res.setHeader("Content-Type", type);
  res.setHeader("Cache-Control", "no-store");
  res.writeHead(status);
  res.end(body);
}
