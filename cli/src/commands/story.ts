import * as grpc from "@grpc/grpc-js";
import { join } from "node:path";
import { ConfigError, type StoryLine } from "../../../common/src/mod.js";
import { formatStoryEntry, parseStory, readStory, type StoryEntry } from "../../../coordinator/src/mod.js";
import { parseCommand } from "../args.js";
import { withReconnect } from "../progress/reconnect.js";
import { CLIENT_HELP, CLIENT_OPTIONS, clientFrom } from "../setup/client-flags.js";

export const STORY_HELP = `delift story JOB [--jsonl] [--data-dir DIR]

Prints a job's story: every stimulus its state machine got (worker reports, task outcomes,
reconcile ticks, cancels) and every change it made (job and tile states, tasks started and ended,
events it rejected and why), with times from the job's start and stimulus ids. From the
coordinator over gRPC, or from a coordinator's data directory with --data-dir (works while it is
down).

  --jsonl                the entries as stored: one JSON object per line
  --data-dir DIR         read DIR/jobs/JOB/story.jsonl instead of asking the coordinator
${CLIENT_HELP}`;

export async function storyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand("story", argv, { ...CLIENT_OPTIONS, jsonl: { type: "boolean" }, "data-dir": { type: "string" } }, true);
  if (values.help) {
    process.stdout.write(STORY_HELP + "\n");
    return 0;
  }
  if (positionals.length !== 1) throw new ConfigError('delift story: expected one JOB argument. Run "delift story --help".');
  const jobId = positionals[0];
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(jobId)) throw new ConfigError(`delift story: "${jobId}" is not a job id`);
  let entries: StoryEntry[];
  if (typeof values["data-dir"] === "string") {
    const path = join(values["data-dir"], "jobs", jobId, "story.jsonl");
    entries = await readStory(path).catch((err: NodeJS.ErrnoException) => {
      throw err.code === "ENOENT" ? new ConfigError(`no story for job ${jobId} in ${values["data-dir"]} (${path})`) : err;
    });
  } else {
    const client = clientFrom(values);
    try {
      const lines = await withReconnect("reading the story", () => readLines(client.raw.getJobStory as never, client, jobId));
      entries = parseStory(lines.join("\n"), `story of ${jobId}`);
    } finally {
      client.close();
    }
  }
  if (values.jsonl) {
    for (const e of entries) process.stdout.write(JSON.stringify(e) + "\n");
    return 0;
  }
  const start = entries[0]?.t ?? 0;
  if (entries.length > 0) process.stdout.write(`job ${jobId}, from ${new Date(start).toISOString()}:\n`);
  for (const e of entries) process.stdout.write(formatStoryEntry(e, start) + "\n");
  return 0;
}

function readLines(method: (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<StoryLine>, client: ReturnType<typeof clientFrom>, jobId: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    const stream = method.call(client.raw, { jobId }, client.metadata());
    stream.on("data", (l: StoryLine) => lines.push(l.json));
    stream.on("error", reject);
    stream.on("end", () => resolve(lines));
  });
}
