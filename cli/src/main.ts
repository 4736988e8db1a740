import { isAbortedError, isConfigError, isInputError, ModelError } from "../../common/src/mod.js";
import { kernelCommand } from "./commands/kernel.js";
import { selectCommand } from "./commands/select.js";

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  kernel: kernelCommand,
  select: selectCommand,
};

const USAGE = `delift: DELIFT data selection for LLM fine-tuning

Usage: delift <command> [options]   (delift <command> --help for its options)

Commands:
  select          select a subset of a data set (kernel + submodular selection) on this machine
  kernel          compute the utility kernel of a data set on this machine`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(USAGE + "\n");
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`delift: unknown command "${name}"\n\n${USAGE}\n`);
    return 2;
  }
  try {
    return await command(rest);
  } catch (err) {
    return reportError(err);
  }
}

function reportError(err: unknown): number {
  if (isAbortedError(err) || (err instanceof Error && err.name === "AbortError") || (err instanceof Error && /^interrupted by/.test(err.message))) {
    process.stderr.write("delift: interrupted; no output was written\n");
    return 130;
  }
  if (isConfigError(err) || isInputError(err) || err instanceof ModelError) {
    process.stderr.write(`delift: ${(err as Error).message}\n`);
    return 2;
  }
  process.stderr.write(`delift: ${(err as Error)?.stack ?? String(err)}\n`);
  return 1;
}
