// A connection's stored status, in a file of its own: the connections store and the connection
// directory (which keeps a copy per slot) both need it, and neither may import the other both ways.
export type ConnectionStatus = "PENDING" | "ACTIVE" | "REFRESH_FAILED" | "NEEDS_REAUTHORIZATION" | "DELETED";
