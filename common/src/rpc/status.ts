import * as grpc from "@grpc/grpc-js";
import {
  CoordinatorInternalError,
  CoordinatorUnavailableError,
  InvalidRequestError,
  JobStateError,
  UnauthenticatedError,
  UnknownJobError,
} from "./errors.js";

/**
 * The one mapping between errors and gRPC status codes: the server turns what it throws into a
 * status (statusOf), clients turn a status back into an error class (errorOf), and the embedded
 * sender, which calls the coordinator directly, uses both (clientErrorOf), so every path agrees.
 *
 *   error (by name)                                   status               client class
 *   UnknownJobError                                   NOT_FOUND            UnknownJobError
 *   CoordinatorUnavailableError                       UNAVAILABLE          CoordinatorUnavailableError
 *   InvalidRequestError, ProtocolError, InputError,   INVALID_ARGUMENT     InvalidRequestError
 *     ConfigError
 *   UnauthenticatedError                              UNAUTHENTICATED      UnauthenticatedError
 *   JobStateError                                     FAILED_PRECONDITION  JobStateError
 *   anything else                                     INTERNAL             CoordinatorInternalError
 *   (no connection, deadline)                         UNAVAILABLE, DEADLINE_EXCEEDED  CoordinatorUnavailableError
 */
const BY_NAME: Record<string, grpc.status> = {
  UnknownJobError: grpc.status.NOT_FOUND,
  CoordinatorUnavailableError: grpc.status.UNAVAILABLE,
  InvalidRequestError: grpc.status.INVALID_ARGUMENT,
  ProtocolError: grpc.status.INVALID_ARGUMENT,
  InputError: grpc.status.INVALID_ARGUMENT,
  ConfigError: grpc.status.INVALID_ARGUMENT,
  UnauthenticatedError: grpc.status.UNAUTHENTICATED,
  JobStateError: grpc.status.FAILED_PRECONDITION,
};

export type RpcStatus = { code: grpc.status; details: string };

export function statusOf(err: unknown): RpcStatus {
  const e = err instanceof Error ? err : new Error(String(err));
  return { code: BY_NAME[e.name] ?? grpc.status.INTERNAL, details: e.message };
}

/** Is this status one a caller may retry after a pause? */
export function isRetryableStatus(code: number | undefined): boolean {
  return code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED || code === grpc.status.RESOURCE_EXHAUSTED;
}

const CLIENT_CLASSES = new Set(["UnknownJobError", "CoordinatorUnavailableError", "InvalidRequestError", "UnauthenticatedError", "JobStateError", "CoordinatorInternalError"]);

/**
 * The client-side error for a failed call (a grpc ServiceError, or anything with a status code);
 * it keeps the status as `code`. An error that already is one of these classes is returned as is.
 */
export function errorOf(err: unknown): Error & { code?: number } {
  if (err instanceof Error && CLIENT_CLASSES.has(err.name)) return err;
  const mapped = classify(err);
  (mapped as Error & { code?: number }).code = (err as { code?: number })?.code;
  return mapped;
}

function classify(err: unknown): Error {
  const e = err as { code?: number; details?: string; message?: string };
  const message = e?.details || e?.message || String(err);
  switch (e?.code) {
    case grpc.status.NOT_FOUND:
      return new UnknownJobError(message, { cause: err });
    case grpc.status.UNAVAILABLE:
    case grpc.status.DEADLINE_EXCEEDED:
    case grpc.status.RESOURCE_EXHAUSTED:
    case grpc.status.CANCELLED:
      return new CoordinatorUnavailableError(message, { cause: err });
    case grpc.status.INVALID_ARGUMENT:
      return new InvalidRequestError(message, { cause: err });
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.PERMISSION_DENIED:
      return new UnauthenticatedError(message, { cause: err });
    case grpc.status.FAILED_PRECONDITION:
      return new JobStateError(message, { cause: err });
    default:
      return new CoordinatorInternalError(message, { cause: err });
  }
}

/** What a direct (embedded) caller gets for an error the coordinator threw: the same as over gRPC. */
export function clientErrorOf(err: unknown): Error {
  const s = statusOf(err);
  return errorOf({ code: s.code, details: s.details });
}
