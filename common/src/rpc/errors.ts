/**
 * Errors of the coordinator's API, on both sides of the wire: the server throws them, rpc/status.ts
 * maps them to gRPC status codes and back, and the embedded path maps them through the same table,
 * so a worker or a CLI command sees the same class whichever way it reached the coordinator.
 */
type Options = { cause?: unknown };

/** The job is not known to this coordinator (never submitted, or from another cluster). */
export class UnknownJobError extends Error {
  constructor(message: string, options?: Options) {
    super(message, options);
    this.name = "UnknownJobError";
  }
  static forJob(jobId: string): UnknownJobError {
    return new UnknownJobError(`unknown job ${jobId}`);
  }
}

/** The coordinator cannot answer now (it is starting, restarting, or the job is still planning): retry. */
export class CoordinatorUnavailableError extends Error {
  constructor(message: string, options?: Options) {
    super(message, options);
    this.name = "CoordinatorUnavailableError";
  }
}

/** The request itself is invalid (bad spec, malformed upload, forged result): retrying cannot help. */
export class InvalidRequestError extends Error {
  constructor(message: string, options?: Options) {
    super(message, options);
    this.name = "InvalidRequestError";
  }
}

/** The call carried no token or the wrong one. */
export class UnauthenticatedError extends Error {
  constructor(message: string, options?: Options) {
    super(message, options);
    this.name = "UnauthenticatedError";
  }
}

/** The job exists but cannot do this in its state (a result of a job that is not done). */
export class JobStateError extends Error {
  constructor(message: string, options?: Options) {
    super(message, options);
    this.name = "JobStateError";
  }
}

/** Anything else the coordinator failed at (a bug, a disk error). */
export class CoordinatorInternalError extends Error {
  constructor(message: string, options?: Options) {
    super(message, options);
    this.name = "CoordinatorInternalError";
  }
}

const is = (name: string) => (err: unknown): boolean => err instanceof Error && err.name === name;
export const isUnknownJobError = is("UnknownJobError") as (err: unknown) => err is UnknownJobError;
export const isCoordinatorUnavailableError = is("CoordinatorUnavailableError") as (err: unknown) => err is CoordinatorUnavailableError;
export const isInvalidRequestError = is("InvalidRequestError") as (err: unknown) => err is InvalidRequestError;
export const isUnauthenticatedError = is("UnauthenticatedError") as (err: unknown) => err is UnauthenticatedError;
export const isJobStateError = is("JobStateError") as (err: unknown) => err is JobStateError;
