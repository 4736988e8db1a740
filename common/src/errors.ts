/**
 * Errors shared by every delift package. Callers branch on the class (or on `name`
 * once an error has crossed a process boundary), never on the message text.
 */

export type ErrorOptions = { cause?: unknown };

/** Where in an input file a problem was found. Line numbers are 1-based. */
export type InputLocation = { file: string; line?: number; field?: string };

/** Bad user data: a line of a data set, a row of a Parquet file, a kernel file. */
export class InputError extends Error {
  readonly location: InputLocation;
  constructor(location: InputLocation, message: string, options?: ErrorOptions) {
    super(`${formatLocation(location)}: ${message}`, options);
    this.name = "InputError";
    this.location = location;
  }
}

/** A flag, a config value or an argument outside what is allowed. */
export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/**
 * A model bundle that cannot be loaded or run as delift needs it: the bundle's own fault, the same
 * on every worker, so a job that meets it fails at once instead of retrying its tiles.
 */
export class ModelError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModelError";
  }
}

/**
 * A fault of this worker, not of the tile or the bundle (model fetch, missing execution provider,
 * out of memory): the tile goes back to the queue without using up a delivery, and a worker that
 * keeps failing this way retires.
 */
export class WorkerHealthError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WorkerHealthError";
  }
}

/** A message from the network (tile, result chunk, status) that does not validate. */
export class ProtocolError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
  }
}

/** The operation was stopped on purpose (Ctrl-C, a cancelled job). */
export class AbortedError extends Error {
  constructor(message = "aborted", options?: ErrorOptions) {
    super(message, options);
    this.name = "AbortedError";
  }
}

export function formatLocation(location: InputLocation): string {
  let text = location.file;
  if (location.line !== undefined) text += `:${location.line}`;
  if (location.field !== undefined) text += ` field "${location.field}"`;
  return text;
}

export function isInputError(err: unknown): err is InputError {
  return err instanceof InputError;
}

export function isConfigError(err: unknown): err is ConfigError {
  return err instanceof ConfigError;
}

export function isModelError(err: unknown): err is ModelError {
  return err instanceof ModelError || (err instanceof Error && err.name === "ModelError");
}

export function isWorkerHealthError(err: unknown): err is WorkerHealthError {
  return err instanceof WorkerHealthError || (err instanceof Error && err.name === "WorkerHealthError");
}

export function isAbortedError(err: unknown): err is AbortedError {
  return err instanceof AbortedError || (err instanceof Error && err.name === "AbortedError");
}
