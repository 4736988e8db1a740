/** A longer (or shorter) deadline for one test than the runner's default. */
export const TIMEOUT_PROPERTY = "deliftTimeoutMs";

export function withTimeout<F extends (...args: never[]) => unknown>(seconds: number, handler: F): F {
  Object.defineProperty(handler, TIMEOUT_PROPERTY, { value: seconds * 1000 });
  return handler;
}
