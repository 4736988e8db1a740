import pino from "pino";
import { ConfigError } from "../errors.js";
import { formatPretty } from "./pretty.js";
import type { LogFields, LogFormat, Logger, LogLevel } from "./types.js";

export type LoggerOptions = {
  format?: LogFormat;
  level?: LogLevel;
  /** Fields on every record (a worker's id, say). */
  base?: LogFields;
  /** Where lines go (default: stderr). */
  write?: (line: string) => void;
};

export const LOG_FORMATS: readonly LogFormat[] = ["json", "pretty"];
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error", "silent"];

/**
 * A pino logger writing to stderr, synchronously (a process that exits right after an error
 * still has its last line out): JSON lines for machines, or the pretty one-line format.
 */
export function createLogger(o: LoggerOptions = {}): Logger {
  const write = o.write ?? ((line: string) => void process.stderr.write(line));
  const format = o.format ?? "pretty";
  const destination = {
    write: format === "json" ? write : (line: string) => write(formatPretty(JSON.parse(line) as Record<string, unknown>)),
  };
  return pino({ level: o.level ?? "info", base: o.base ?? null, timestamp: pino.stdTimeFunctions.epochTime }, destination) as unknown as Logger;
}

/** A logger that drops everything (library defaults, quiet tests). */
export function silentLogger(): Logger {
  return createLogger({ level: "silent", write: () => undefined });
}

export function parseLogFormat(value: unknown, flag = "log-format"): LogFormat {
  if (value === undefined) return "pretty";
  if (typeof value !== "string" || !LOG_FORMATS.includes(value as LogFormat)) throw new ConfigError(`--${flag}: expected one of ${LOG_FORMATS.join(", ")}, got "${String(value)}"`);
  return value as LogFormat;
}

export function parseLogLevel(value: unknown, fallback: LogLevel, flag = "log-level"): LogLevel {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || !LOG_LEVELS.includes(value as LogLevel)) throw new ConfigError(`--${flag}: expected one of ${LOG_LEVELS.join(", ")}, got "${String(value)}"`);
  return value as LogLevel;
}

/**
 * Fields for an error: expected conditions (bad input, a refused request, a broken bundle, an
 * unhealthy worker) carry their message only; anything else carries the error with its stack.
 */
export function errorFields(err: unknown): LogFields {
  const e = err instanceof Error ? err : new Error(String(err));
  return EXPECTED_ERRORS.has(e.name) ? { error: e.message, errorType: e.name } : { err: e, error: e.message };
}

const EXPECTED_ERRORS = new Set([
  "InputError",
  "ConfigError",
  "ModelError",
  "WorkerHealthError",
  "ProtocolError",
  "AbortedError",
  "AbortError",
  "UnknownJobError",
  "JobNotReadyError",
  "JobGoneError",
  "ResultRejectedError",
  "TileConflictError",
  "UnauthenticatedError",
  "CoordinatorUnavailableError",
  "LeaseError",
]);
