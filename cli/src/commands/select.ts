import { parseCommand, requireString } from "../args.js";
import { EMBEDDED_HELP, EMBEDDED_OPTIONS, embeddedFlags } from "../setup/embedded-flags.js";
import { JOB_OPTIONS, SCORING_HELP, SELECTION_HELP, jobSpecFromFlags } from "../setup/job-flags.js";
import { runLocally } from "../setup/run-locally.js";

export const SELECT_HELP = `delift select --data FILE --model DIR --budget B --out DIR [options]

Selects the most useful subset of a data set with DELIFT: scores every (example, target) pair
with the model, then maximises the stage's submodular objective. Writes DIR/selected.jsonl (the
selected records with their original fields plus index, rank and gain, in pick order),
DIR/report.json and DIR/report.html.

${SELECTION_HELP}
  --job FILE             a whole job spec as JSON (as for "delift submit"); flags override it
${SCORING_HELP}
${EMBEDDED_HELP}`;

export async function selectCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("select", argv, { ...JOB_OPTIONS, ...EMBEDDED_OPTIONS });
  if (values.help) {
    process.stdout.write(SELECT_HELP + "\n");
    return 0;
  }
  const out = requireString(values.out, "out", "select");
  if (typeof values.job !== "string") {
    requireString(values.data, "data", "select");
    requireString(values.model, "model", "select");
    requireString(values.budget, "budget", "select");
  }
  const spec = await jobSpecFromFlags(values, "select");
  return runLocally(spec, out, embeddedFlags(values));
}
