import { createContextKey } from "@connectrpc/connect";
import type { Logger } from "pino";

/** The logger of the current RPC, carrying its request ID. Set by the logging interceptor. */
export const requestLogger = createContextKey<Logger | undefined>(undefined, { description: "request logger" });
