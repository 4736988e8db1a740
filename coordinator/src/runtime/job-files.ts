import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { JobSpec } from "../jobs/job-spec.js";
import type { JobState } from "../jobs/job-state.js";

/** What survives a coordinator restart besides the tile store: each job's spec and last state. */
export type SavedJobState = { state: JobState; error: string | null; createdAt: number; finishedAt: number | null; summary?: string | null; failedDuring?: string | null };

export function jobDir(dataDir: string, jobId: string): string {
  return join(dataDir, "jobs", jobId);
}

export function resultDir(dataDir: string, jobId: string): string {
  return join(jobDir(dataDir, jobId), "result");
}

export async function saveSpec(dataDir: string, jobId: string, spec: JobSpec): Promise<void> {
  await mkdir(jobDir(dataDir, jobId), { recursive: true });
  await atomicWrite(join(jobDir(dataDir, jobId), "spec.json"), JSON.stringify(spec, null, 1));
}

export async function saveState(dataDir: string, jobId: string, state: SavedJobState): Promise<void> {
  await atomicWrite(join(jobDir(dataDir, jobId), "state.json"), JSON.stringify(state));
}

export async function listSavedJobs(dataDir: string): Promise<{ jobId: string; spec: JobSpec; state: SavedJobState }[]> {
  const root = join(dataDir, "jobs");
  const ids = await readdir(root).catch(() => [] as string[]);
  const out: { jobId: string; spec: JobSpec; state: SavedJobState }[] = [];
  for (const jobId of ids) {
    try {
      const spec = JSON.parse(await readFile(join(root, jobId, "spec.json"), "utf8")) as JobSpec;
      const state = JSON.parse(await readFile(join(root, jobId, "state.json"), "utf8")) as SavedJobState;
      out.push({ jobId, spec, state });
    } catch {
      // A job directory without both files never got past submission: nothing to resume.
    }
  }
  return out.sort((a, b) => a.state.createdAt - b.state.createdAt);
}

async function atomicWrite(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}
