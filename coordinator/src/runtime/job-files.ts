import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { JobSpec } from "../jobs/job-spec.js";
import type { JobCounts, JobSettings, JobState } from "../jobs/job-state.js";
import { syncDir } from "../store/tile-store.js";

/** What survives a coordinator restart besides the tile store and the story: each job's spec and last state. */
export type SavedJobState = {
  state: JobState;
  error: string | null;
  createdAt: number;
  finishedAt: number | null;
  summary?: string | null;
  failedDuring?: string | null;
  settings?: JobSettings;
  counts?: JobCounts;
  session?: number;
  released?: boolean;
};

export function jobDir(dataDir: string, jobId: string): string {
  return join(dataDir, "jobs", jobId);
}

export function resultDir(dataDir: string, jobId: string): string {
  return join(jobDir(dataDir, jobId), "result");
}

export function storyPath(dataDir: string, jobId: string): string {
  return join(jobDir(dataDir, jobId), "story.jsonl");
}

export async function saveSpec(dataDir: string, jobId: string, spec: JobSpec): Promise<void> {
  await mkdir(jobDir(dataDir, jobId), { recursive: true });
  await syncDir(join(dataDir, "jobs"));
  await atomicWrite(join(jobDir(dataDir, jobId), "spec.json"), JSON.stringify(spec, null, 1));
}

export async function saveState(dataDir: string, jobId: string, state: SavedJobState): Promise<void> {
  await atomicWrite(join(jobDir(dataDir, jobId), "state.json"), JSON.stringify(state));
}

/** The job's secret tile key (never leaves the coordinator but over authenticated gRPC). */
export async function saveKey(dataDir: string, jobId: string, key: Uint8Array): Promise<void> {
  await atomicWrite(join(jobDir(dataDir, jobId), "tile.key"), Buffer.from(key).toString("hex"), 0o600);
}

export type SavedJob =
  | { jobId: string; ok: true; spec: JobSpec; state: SavedJobState; key: Uint8Array | null }
  /** A job directory whose files cannot be read: reported and marked failed, never dropped. */
  | { jobId: string; ok: false; problem: string; path: string; spec: JobSpec | null; createdAt: number };

export async function listSavedJobs(dataDir: string): Promise<SavedJob[]> {
  const root = join(dataDir, "jobs");
  const ids = await readdir(root).catch(() => [] as string[]);
  const out: SavedJob[] = [];
  for (const jobId of ids) {
    const dir = join(root, jobId);
    const spec = await readJson<JobSpec>(join(dir, "spec.json"));
    const state = await readJson<SavedJobState>(join(dir, "state.json"));
    if (spec.ok && state.ok && isSavedState(state.value)) {
      const key = await readFile(join(dir, "tile.key"), "utf8").then((h) => (/^[0-9a-f]{64}$/.test(h.trim()) ? Buffer.from(h.trim(), "hex") : null), () => null);
      out.push({ jobId, ok: true, spec: spec.value, state: state.value, key });
      continue;
    }
    const bad = !spec.ok ? spec : !state.ok ? state : { path: join(dir, "state.json"), problem: "not a job state" };
    out.push({ jobId, ok: false, problem: bad.problem, path: bad.path, spec: spec.ok ? spec.value : null, createdAt: state.ok && typeof state.value.createdAt === "number" ? state.value.createdAt : 0 });
  }
  return out.sort((a, b) => createdAt(a) - createdAt(b));
}

const createdAt = (j: SavedJob) => (j.ok ? j.state.createdAt : j.createdAt);

function isSavedState(v: SavedJobState): boolean {
  return !!v && typeof v === "object" && typeof v.state === "string" && typeof v.createdAt === "number";
}

async function readJson<T>(path: string): Promise<{ ok: true; value: T } | { ok: false; path: string; problem: string }> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    return { ok: false, path, problem: (err as NodeJS.ErrnoException).code === "ENOENT" ? "missing" : (err as Error).message };
  }
  try {
    return { ok: true, value: JSON.parse(text) as T };
  } catch (err) {
    return { ok: false, path, problem: `unreadable (${text.length} bytes): ${(err as Error).message}` };
  }
}

/**
 * Temp file, fsync, rename, fsync of the directory: a crash leaves the old file or the new one,
 * whole. The temp name is unique, so two writers of one content-named file cannot collide.
 */
export async function atomicWrite(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const file = await open(tmp, "w", mode);
  try {
    await file.writeFile(data);
    await file.sync();
  } catch (err) {
    await file.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await file.close();
  await rename(tmp, path);
  await syncDir(join(path, ".."));
}
