import { isAbortedError, isConfigError, isInputError, isInvalidRequestError, isUnauthenticatedError, isUnknownJobError, isWorkerHealthError, ModelError } from "../../common/src/mod.js";
import { cancelCommand, jobsCommand, resultCommand, submitCommand, watchCommand, workersCommand } from "./commands/client-commands.js";
import { coordinatorCommand } from "./commands/coordinator.js";
import { doctorCommand } from "./commands/doctor.js";
import { kernelCommand } from "./commands/kernel.js";
import { modelCommand } from "./commands/model.js";
import { selectCommand } from "./commands/select.js";
import { storyCommand } from "./commands/story.js";
import { workerCommand } from "./commands/worker.js";

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  select: selectCommand,
  kernel: kernelCommand,
  model: modelCommand,
  coordinator: coordinatorCommand,
  worker: workerCommand,
  submit: submitCommand,
  watch: watchCommand,
  jobs: jobsCommand,
  workers: workersCommand,
  cancel: cancelCommand,
  result: resultCommand,
  story: storyCommand,
  doctor: doctorCommand,
};

const USAGE = `delift: DELIFT data selection for LLM fine-tuning

Usage: delift <command> [options]   (delift <command> --help for its options)

Commands:
On this machine (the embedded default, no NATS server needed):
  select          select the most useful subset of a data set (utility kernel + submodular selection)
  kernel          compute the utility kernel of a data set
  model prepare   prepare a model bundle (log-probabilities of target tokens instead of logits)

On a cluster (NATS JetStream + gRPC):
  coordinator     run the coordinator
  worker          run a worker (GPU or CPU); add or remove workers at any time
  submit          submit a job, print its id
  watch JOB       follow a job's progress
  jobs            list jobs
  workers         list live workers
  cancel JOB      cancel a job
  result JOB      download a finished job's result
  story JOB       print a job's story (every event and state change, with ids and times)
  doctor          check this machine, NATS, the coordinator and a model bundle (one line per check)`;

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
    return reportError(err, JSON_COMMANDS.has(name) && rest.includes("--json"));
  }
}

/** Commands whose --json also makes their errors JSON (README, "Scripting with --json"). */
const JSON_COMMANDS = new Set(["submit", "watch", "jobs", "workers", "result", "cancel"]);

type ErrorReport = { exitCode: number; code: string; message: string; text: string };

function reportError(err: unknown, json = false): number {
  const r = classifyError(err);
  if (json) process.stderr.write(JSON.stringify({ error: { code: r.code, message: r.message, exitCode: r.exitCode } }) + "\n");
  else process.stderr.write(`delift: ${r.text}\n`);
  return r.exitCode;
}

/** The exit code, a stable error code for --json, and the line a person reads. */
function classifyError(err: unknown): ErrorReport {
  const message = (err as Error)?.message ?? String(err);
  const report = (exitCode: number, code: string, text = message): ErrorReport => ({ exitCode, code, message, text });
  if (isAbortedError(err) || (err instanceof Error && err.name === "AbortError") || (err instanceof Error && /^interrupted by/.test(err.message))) {
    return { exitCode: 130, code: "interrupted", message: "interrupted; no output was written", text: "interrupted; no output was written" };
  }
  if (isConfigError(err)) return report(2, "invalid-option");
  if (isInputError(err)) return report(2, "invalid-input");
  if (err instanceof ModelError) return report(2, "model-error");
  if (isWorkerHealthError(err)) return report(2, "worker-health");
  // The coordinator's answers: refused, unknown job, or gone for longer than a client waits.
  if (isUnauthenticatedError(err)) return report(2, "unauthenticated");
  if (isUnknownJobError(err)) return report(2, "unknown-job");
  if (isInvalidRequestError(err)) return report(2, "invalid-request");
  if (err instanceof Error && (err.name === "CoordinatorGoneError" || err.name === "CoordinatorUnavailableError")) return report(4, "coordinator-unavailable");
  if (err instanceof Error && err.name === "LeaseError") return report(1, "lease");
  if (err instanceof Error && err.name === "WorkerRetiredError") return report(1, "worker-retired");
  return report(1, "internal", (err as Error)?.stack ?? String(err));
}
