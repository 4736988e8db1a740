import { parseCommand, requireString } from "../args.js";
import { EMBEDDED_HELP, EMBEDDED_OPTIONS, embeddedFlags } from "../setup/embedded-flags.js";
import { JOB_OPTIONS, SCORING_HELP, jobSpecFromFlags } from "../setup/job-flags.js";
import { runLocally } from "../setup/run-locally.js";

export const KERNEL_HELP = `delift kernel --data FILE --model DIR --out DIR [options]

Computes the dense DELIFT utility kernel UF[i][j] = d(y_i | P0) - d(y_i | P1 with example j) of a
data set and writes DIR/kernel.parquet (row, col, utility; rows are targets, columns in-context
examples), DIR/kernel.bin (compact CSC, with the P0 distances) and DIR/kernel.json (sample ids,
model hash, settings, truncation counts).

  --data FILE            JSONL (.jsonl, .jsonl.gz) or Parquet data set
  --model DIR            model bundle
${SCORING_HELP}
${EMBEDDED_HELP}`;

export async function kernelCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("kernel", argv, { ...JOB_OPTIONS, ...EMBEDDED_OPTIONS });
  if (values.help) {
    process.stdout.write(KERNEL_HELP + "\n");
    return 0;
  }
  requireString(values.data, "data", "kernel");
  requireString(values.model, "model", "kernel");
  const out = requireString(values.out, "out", "kernel");
  const spec = await jobSpecFromFlags(values, "kernel");
  return runLocally(spec, out, embeddedFlags(values));
}
