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

/** A model bundle that cannot be loaded or run as delift needs it. */
export class ModelError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModelError";
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

export function isAbortedError(err: unknown): err is AbortedError {
  return err instanceof AbortedError || (err instanceof Error && err.name === "AbortedError");
}
