import { parseArgs, type ParseArgsConfig } from "node:util";
import { ConfigError } from "../../common/src/mod.js";

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

/** util.parseArgs, strict, with errors that name the command and point at --help. */
export type ParsedArgs = { values: Record<string, string | boolean | undefined>; positionals: string[] };

export function parseCommand(command: string, argv: string[], options: OptionSpec, allowPositionals = false): ParsedArgs {
  try {
    const parsed = parseArgs({ args: argv, options: { help: { type: "boolean", short: "h" }, ...options }, strict: true, allowPositionals });
    return { values: parsed.values as ParsedArgs["values"], positionals: parsed.positionals };
  } catch (err) {
    throw new ConfigError(`delift ${command}: ${(err as Error).message.replace(/^TypeError[^:]*: /, "")}. Run "delift ${command} --help".`);
  }
}

export function requireString(value: string | boolean | undefined, flag: string, command: string): string {
  if (typeof value !== "string" || value === "") throw new ConfigError(`delift ${command}: --${flag} is required. Run "delift ${command} --help".`);
  return value;
}

export function intOption(value: string | boolean | undefined, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== "string" || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`--${flag}: expected an integer from ${min} to ${max}, got "${String(value)}"`);
  }
  return n;
}

export function numberOption(value: string | boolean | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== "string" || value.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw new ConfigError(`--${flag}: expected a number from ${min} to ${max}, got "${String(value)}"`);
  }
  return n;
}

export function choiceOption<T extends string>(value: string | boolean | undefined, flag: string, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !choices.includes(value as T)) {
    throw new ConfigError(`--${flag}: expected one of ${choices.join(", ")}, got "${String(value)}"`);
  }
  return value as T;
}
