/**
 * delift's logging interface: structured records with a level, a message and fields. Ids travel as
 * fields, always under the same names (`job`, `tile`, `worker`), so a JSON log can be filtered by
 * them. pino implements it (log.ts); tests may pass any object of this shape.
 */
export type LogFields = {
  job?: string;
  tile?: string;
  worker?: string;
  [field: string]: unknown;
};

export type LogFn = {
  (message: string): void;
  (fields: LogFields, message: string): void;
};

export type Logger = {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  /** A logger that adds `bindings` to every record. */
  child(bindings: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
};

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
export type LogFormat = "json" | "pretty";
