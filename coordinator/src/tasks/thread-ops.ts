import { type CorpusRef, encodeTileMessage, formatProblem, type PhaseProgress, formatSummary, type ModelBundle, summarizeCorpus, tileMac, type TokenizedPrompts } from "../../../common/src/mod.js";
import type { TransferListItem } from "node:worker_threads";
import type { JobSpec } from "../jobs/job-spec.js";
import { tilePairCount, type TileSpec } from "../plan/tile-spec.js";
import { indexedTileWork } from "../plan/tile-work.js";
import { type CorpusObjects, writeCorpusObjects } from "../store/corpus-objects.js";
import { join } from "node:path";
import { PhaseMeter } from "../plan/phase-meter.js";
import type { SearchFacts } from "../plan/given-embeddings.js";
import { jobSelectionSettings, prepareJobSelection, reportJobSelection, searchedEntries, searchJobKernels, stageJobKernels, type SearchOutput, writeKernelJob, writeSelectedJob, type JobTimings, type PreparedJobSelection, type SelectedJob } from "../runtime/finish-job.js";
import { runCentralSelection, shardedOutcome, wantsLazyComparison } from "../select/run-selection.js";
import { chooseJobSelection, shardedPlanOf, type SelectionPlan } from "../select/sharded-job.js";
import { objectiveValueOfAllChunked } from "../select/chunked-selection.js";
import type { DistributedResult } from "../../../common/src/selection/distributed/mod.js";
import { planJob, type PlannedJob } from "../runtime/plan-job.js";
import { readStoredTile } from "../store/tile-store.js";
import { holdRequested, type HoldPoint } from "./hold.js";
import { embedOfPlan, embedTileMessage, searchSetsFromTiles, type EmbedPlan } from "./embed-ops.js";
import { gatherSearchWork, planSearchWork, searchTileMessage, searchUploadProblem, searchWorkTiles, type SearchWorkPlan } from "./search-work.js";

/** What a job's thread keeps between calls. */
export type ThreadState = {
  jobId: string;
  hold: (point: HoldPoint) => void;
  /** Reports the current phase's progress to the coordinator (the status carries it). */
  progress: (p: PhaseProgress) => void;
  spec: JobSpec | null;
  key: Uint8Array | null;
  storeDir: string | null;
  planned: PlannedJob | null;
  selected: SelectedJob | null;
  /** What the search phase found (SE on given embeddings), for the selection to stage. */
  kernels: SearchOutput | null;
  /** A selection prepared here and running on shard hosts (the `selected` op finishes it). */
  sharded: { prepared: PreparedJobSelection; valueOfAll: number; timings: JobTimings; tiles: { computed: number; reused: number } } | null;
  /** The job's embed tiles (SE kernel without given embeddings): the workers compute them. */
  embed: EmbedPlan | null;
  /** The corpus objects tile messages index (written when the job has tiles). */
  corpus: CorpusRef | null;
  /** The job's exact candidate search as worker tiles (search on workers), until gathered. */
  searchWork: SearchWorkPlan | null;
};

export function newThreadState(jobId: string, hold: (point: HoldPoint) => void, progress: (p: PhaseProgress) => void = () => undefined): ThreadState {
  return { jobId, hold, progress, spec: null, key: null, storeDir: null, planned: null, selected: null, kernels: null, sharded: null, embed: null, corpus: null, searchWork: null };
}

type Result<T> = Promise<{ value: T; transfer?: TransferListItem[] }>;

/** What the coordinator gets back from planning: the tile list and enough of the model to publish it. */
export type PlanResult = {
  tiles: { id: string; pairs: number }[];
  samples: number;
  loadSeconds: number;
  bundle: ModelBundle;
  prompts: TokenizedPrompts;
  description: PlanDescription | null;
  /** The job's kernel comes from a candidate search phase (the `search` op), not from tiles. */
  search: boolean;
  /** The `tiles` are embed tiles (pairs: samples) of `dim` floats a row, before the search phase. */
  embed: { dim: number } | null;
  /** The tokenized corpus as content-keyed files for the object store (null: the job has no tiles). */
  corpus: CorpusObjects | null;
};

/** The data summary the embedded commands print before scoring (and the records skipped on load). */
export type PlanDescription = { summary: string; skipped: string[] };

export type EncodedTile = { id: string; data: Uint8Array; mac: string };

/** The search phase handed to the workers: its tiles and the matrix blob (a file) they read. */
export type SearchWorkOut = { tiles: { id: string; pairs: number }[]; matrix: { name: string; path: string; bytes: number } };

export type ThreadOps = typeof THREAD_OPS;

export const THREAD_OPS = {
  /** Loads the job's data and model, searches neighbours (sparse mode), cuts the tiles. */
  async plan(state: ThreadState, input: { spec: JobSpec; key: Uint8Array; storeDir: string; maxTileTokens?: number; describe: boolean }): Result<PlanResult> {
    const started = performance.now();
    const reading = new PhaseMeter("reading", state.progress);
    const embeddings = new PhaseMeter("embeddings", state.progress);
    const planned = await planJob(input.spec, input.maxTileTokens, {
      onRead: (p) => reading.tick("records", p.bytesDone, p.bytesTotal, "bytes"),
      onEmbeddings: (done, total) => embeddings.tick("given file", done, total, "bytes"),
    });
    // Tiles carry sample indices: the corpus they index goes to the object store once (content-keyed, beside the tile store).
    const corpus = planned.tiles.size > 0 ? await writeCorpusObjects(planned.sets.tokens, join(input.storeDir, "corpora")) : null;
    Object.assign(state, { spec: input.spec, key: input.key, storeDir: input.storeDir, planned, selected: null, kernels: null, corpus: corpus?.ref ?? null });
    // Embed tiles carry their token sequences (self-contained): no corpus objects for them.
    state.embed = await embedOfPlan(input.spec, planned);
    const tiles = state.embed ? [...state.embed.byId.values()].map((t) => ({ id: t.id, pairs: t.rows.length })) : [...planned.tiles.values()].map((t) => ({ id: t.id, pairs: tilePairCount(t) }));
    return {
      value: {
        tiles,
        samples: planned.sets.v.length,
        loadSeconds: (performance.now() - started) / 1000,
        bundle: planned.inputs.bundle,
        prompts: planned.inputs.prompts,
        description: input.describe ? describePlan(input.spec, planned) : null,
        search: state.embed !== null || needsSearchPhase(input.spec, planned),
        embed: state.embed ? { dim: state.embed.dim } : null,
        corpus,
      },
    };
  },

  /**
   * The candidate search phase of the SE kernel on given embeddings: each kernel's candidate
   * lists, kept for `select`, which computes their similarities straight into the chunked kernel.
   */
  async search(state: ThreadState, input: { workers: boolean }): Result<{ nnz: number; searches: SearchFacts[]; work: SearchWorkOut | null }> {
    const { planned: given, spec, storeDir } = ready(state);
    // The workers' embeddings (embed tiles) become the job's matrix, as given embeddings would be: the selection stages its similarities from it.
    const planned = state.embed ? { ...given, sets: await searchSetsFromTiles(state.embed, given.sets, storeDir, new PhaseMeter("embeddings", state.progress)) } : given;
    state.planned = planned;
    if (input.workers) {
      // Exact searches go to the workers as tiles; the `gather` op merges their lists.
      const work = await planSearchWork(spec, planned, join(storeDir, "search-matrices"));
      state.searchWork = work;
      if (work) return { value: { nnz: 0, searches: [], work: { tiles: searchWorkTiles(work), matrix: { name: work.matrix.name, path: work.matrix.path, bytes: work.matrix.bytes } } } };
    }
    const meter = new PhaseMeter("candidates", state.progress);
    const searches: SearchFacts[] = [];
    const searched = await searchJobKernels(spec, planned, { onProgress: meter.searchProgress(), onSearched: (f) => searches.push(f) });
    state.kernels = searched;
    return { value: { nnz: searchedEntries(searched.main) + (searched.second ? searchedEntries(searched.second) : 0), searches, work: null } };
  },

  /** The workers' search tiles (all stored) merged per query block into the kernels' candidate tables, as `search` makes them. */
  async gather(state: ThreadState, _input: Record<string, never>): Result<{ nnz: number; searches: SearchFacts[] }> {
    const { spec, storeDir } = ready(state);
    const work = state.searchWork;
    if (!work) throw new Error(`job ${state.jobId}: no search tiles to gather`);
    const meter = new PhaseMeter("candidates", state.progress);
    const { kernels, facts } = await gatherSearchWork(spec, work, async (id) => (await readStoredTile(storeDir, id)).distances, (done, total) => meter.tick("merging worker lists", done, total, "tiles"));
    state.kernels = { main: kernels[0], second: kernels[1] ?? null };
    state.searchWork = null;
    return { value: { nnz: kernels.reduce((n, k) => n + searchedEntries(k), 0), searches: facts } };
  },

  /** Why an uploaded search tile result is refused (null: well formed for its tile). */
  async searchProblem(state: ThreadState, input: { id: string; values: Float32Array }): Result<string | null> {
    if (!state.searchWork) return { value: `job ${state.jobId} has no search tiles now` };
    return { value: searchUploadProblem(state.searchWork, input.id, input.values) };
  },

  /** Tile messages to publish, with their authentication codes. */
  async tiles(state: ThreadState, input: { ids: string[] }): Result<EncodedTile[]> {
    const { planned, key } = ready(state);
    const corpus = state.embed || state.searchWork ? null : corpusOf(state);
    const out = input.ids.map((id) => {
      if (state.searchWork?.byId.has(id)) {
        const data = new Uint8Array(searchTileMessage(state.searchWork, state.jobId, id));
        return { id, data, mac: tileMac(key, state.jobId, id, data) };
      }
      // A copy in a buffer of its own: the encoder's output may share one, and each is transferred.
      const data = new Uint8Array(state.embed ? embedTileMessage(state.embed, planned, state.jobId, id) : encodeTileMessage({ jobId: state.jobId, tileId: id, corpus: corpus!, work: indexedTileWork(tileOf(planned, id)) }));
      return { id, data, mac: tileMac(key, state.jobId, id, data) };
    });
    return { value: out, transfer: out.map((t) => t.data.buffer as ArrayBuffer) as TransferListItem[] };
  },

  /** Authentication codes of tiles as they are (or would be) published, to check an upload against. */
  async macs(state: ThreadState, input: { ids: string[] }): Result<{ id: string; mac: string | null }[]> {
    const { planned, key } = ready(state);
    const corpus = state.embed || state.searchWork ? null : corpusOf(state);
    return {
      value: input.ids.map((id) => {
        if (state.searchWork?.byId.has(id)) return { id, mac: tileMac(key, state.jobId, id, searchTileMessage(state.searchWork, state.jobId, id)) };
        if (state.embed) return { id, mac: state.embed.byId.has(id) ? tileMac(key, state.jobId, id, embedTileMessage(state.embed, planned, state.jobId, id)) : null };
        const tile = planned.tiles.get(id);
        return { id, mac: tile ? tileMac(key, state.jobId, id, encodeTileMessage({ jobId: state.jobId, tileId: id, corpus: corpus!, work: indexedTileWork(tile) })) : null };
      }),
    };
  },

  /**
   * Stages the job's kernels in the chunked format (utility kernels assembled out of core from the
   * stored tiles) and, by the choice rule (--select-shards, --select-memory), either reads the main
   * kernel once, selects here and builds the report (kept for `write`), or returns the plan of a
   * distributed selection whose hosts read the staged main kernel (`shardedDir`) as it is; the
   * coordinator runs it and hands the result back to `selected`. Staged files live in
   * `shardedDir` and its `-second` sibling, which the coordinator removes however the task ends.
   */
  async select(state: ThreadState, input: { timings: JobTimings; tiles: { computed: number; reused: number }; shardedDir: string; autoShard: boolean }): Result<SelectionPlan> {
    const { planned, spec, storeDir } = ready(state);
    await holdHere(state, "selecting");
    const stagingStarted = performance.now();
    // The search phase's kernels are handed over, not kept: once staged they are garbage.
    const meter = new PhaseMeter("kernel", state.progress);
    const staging = {
      main: input.shardedDir,
      second: `${input.shardedDir}-second`,
      onProgress: (kernel: "main" | "second", step: "tiles" | "rows" | "chunks", done: number, total: number) =>
        meter.tick(`${kernel === "main" ? "" : "second kernel: "}${STAGING_STEPS[step]}`, done, total, step),
    };
    const staged = await stageJobKernels(spec, planned, (t) => readStoredTile(storeDir, t.id), staging, takeKernels(state));
    const stagingSeconds = (performance.now() - stagingStarted) / 1000;
    const choice = chooseJobSelection(staged.main.index, spec.selection, input.autoShard);
    const settings = jobSelectionSettings(spec, planned);
    const central = choice.mode === "central";
    const prepared = await prepareJobSelection(spec, planned, staged, input.timings, central || wantsLazyComparison(settings, staged.main.index.nnz), stagingSeconds);
    if (choice.mode === "central") {
      state.selected = await reportJobSelection(spec, planned, prepared, runCentralSelection({ main: prepared.main!, second: null }, prepared.settings, prepared.prepared), input.timings, input.tiles);
      return { value: { mode: "central", reason: choice.reason } };
    }
    const valueOfAll = await objectiveValueOfAllChunked(staged.main.dir, settings.scaling, prepared.prepared.objective);
    state.sharded = { prepared, valueOfAll, timings: input.timings, tiles: input.tiles };
    return { value: shardedPlanOf(staged.main.index, prepared.prepared.objective, choice, settings.k, settings.scaling) };
  },

  /** The result of a distributed selection: builds the report (with central lazy greedy's f where affordable); kept for `write`. */
  async selected(state: ThreadState, input: { result: DistributedResult; seconds: number }): Result<{ ratioToLazy: number | null }> {
    const { planned, spec } = ready(state);
    if (!state.sharded) throw new Error(`job ${state.jobId}: no distributed selection was prepared`);
    const { prepared, valueOfAll, timings, tiles } = state.sharded;
    const outcome = shardedOutcome({ main: prepared.main }, prepared.settings, prepared.prepared, input.result, input.seconds, valueOfAll);
    state.selected = await reportJobSelection(spec, planned, prepared, outcome, timings, tiles);
    state.sharded = null;
    return { value: { ratioToLazy: state.selected.report.result.ratioToLazy } };
  },

  /** Writes the job's result into `dir` (the coordinator moves it into place). */
  async write(state: ThreadState, input: { dir: string }): Result<{ summary: string }> {
    const { planned, spec, storeDir } = ready(state);
    let summary: string;
    if (spec.kind === "kernel") summary = (await writeKernelJob(spec, planned, (t) => readStoredTile(storeDir, t.id), input.dir)).summary;
    else {
      if (!state.selected) throw new Error(`job ${state.jobId}: nothing selected to write`);
      summary = (await writeSelectedJob(spec, planned, state.selected, input.dir, (t) => readStoredTile(storeDir, t.id))).summary;
    }
    await holdHere(state, "writing");
    return { value: { summary } };
  },
};

const STAGING_STEPS = { tiles: "assembling from tiles", rows: "similarities", chunks: "writing chunks" } as const;

function takeKernels(state: ThreadState): ThreadState["kernels"] {
  const kernels = state.kernels;
  state.kernels = null;
  return kernels;
}

function ready(state: ThreadState): { planned: PlannedJob; spec: JobSpec; key: Uint8Array; storeDir: string } {
  if (!state.planned || !state.spec || !state.key || !state.storeDir) throw new Error(`job ${state.jobId} is not planned in this thread`);
  return { planned: state.planned, spec: state.spec, key: state.key, storeDir: state.storeDir };
}

function corpusOf(state: ThreadState): CorpusRef {
  if (!state.corpus) throw new Error(`job ${state.jobId}: its corpus objects were not written`);
  return state.corpus;
}

function tileOf(planned: PlannedJob, id: string): TileSpec {
  const tile = planned.tiles.get(id);
  if (!tile) throw new Error(`no tile ${id} in the plan`);
  return tile;
}

/** A hold point inside the thread: tell the coordinator, then wait until the thread is terminated. */
async function holdHere(state: ThreadState, point: HoldPoint): Promise<void> {
  if (!holdRequested(point)) return;
  state.hold(point);
  await new Promise<never>(() => undefined);
}

export function describePlan(spec: JobSpec, planned: PlannedJob): PlanDescription {
  const { sets, skipped, inputs } = planned;
  if (sets.records && sets.embeddings) {
    const e = sets.embeddings;
    const summary =
      `${spec.data}: ${sets.v.length.toLocaleString("en-US")} candidates${sets.o.length > 0 ? ` and ${sets.o.length.toLocaleString("en-US")} in the ${spec.selection.stage === "task" ? "target" : "existing"} set` : ""}` +
      ` (records indexed, not tokenized: the SE kernel on ${spec.embeddings}, ${e.dim} dimensions, ${e.dtype})`;
    return { summary, skipped: skipped.map((s) => formatProblem(s)) };
  }
  const corpus = { file: spec.data, samples: [...sets.candidates, ...sets.other], tokens: sets.tokens, skipped };
  const dense = spec.selection.kernelType === "utility" && !spec.scoring.candidates;
  const pairs = !dense ? null : spec.selection.stage === "task" ? { examples: sets.v, targets: sets.o } : { examples: sets.v, targets: sets.v };
  return { summary: formatSummary(summarizeCorpus(corpus, inputs.prompts, pairs)), skipped: skipped.map((s) => formatProblem(s)) };
}

/** Jobs whose kernel is built by the search phase: DELIFT (SE) on given embeddings. */
export function needsSearchPhase(spec: JobSpec, planned: PlannedJob): boolean {
  return spec.kind === "select" && spec.selection.kernelType === "se" && planned.sets.embeddings !== null;
}
