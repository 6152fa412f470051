import { ConnectError } from "@connectrpc/connect";

/** Awaits a call that must fail and returns its ConnectError. */
export async function connectError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}
