import { createHash, randomUUID } from "node:crypto";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  ENCODER_BATCH,
  type EmbedTileWork,
  embedTileId,
  loadOnnxEncoder,
  ModelError,
  npyHeader,
  planBatches,
  runSizes,
  sampleTokens,
  type TileOutput,
} from "../../../common/src/mod.js";
import type { ModelInputs } from "../inputs/load-inputs.js";
import type { SampleSets } from "../inputs/sample-sets.js";

/**
 * The token sequences the encoder takes for every sample: x + "\n" + y, cut to the maximum length.
 * Sequence g is sample g's (global index).
 */
export function sampleSequences(inputs: ModelInputs, sets: SampleSets): Int32Array[] {
  const newline = inputs.tokenizer.encode("\n");
  return Array.from({ length: sets.tokens.count }, (_, g) => {
    const t = sampleTokens(sets.tokens, g);
    const ids = new Int32Array(t.x.length + newline.length + t.y.length);
    ids.set(t.x, 0);
    ids.set(newline, t.x.length);
    ids.set(t.y, t.x.length + newline.length);
    return ids.subarray(0, inputs.prompts.maxLength);
  });
}

function encoderPathOf(inputs: ModelInputs, why: string): string {
  if (!inputs.bundle.encoderPath) {
    throw new ModelError(`model bundle ${inputs.bundle.dir} has no encoder (manifest files.encoder): ${why} needs one`);
  }
  return inputs.bundle.encoderPath;
}

/**
 * Sentence embeddings of every sample, computed here with the bundle's encoder: L2-normalised rows
 * of `dim` floats, by global sample index. Used by sparse mode's neighbour search (the SE kernel's
 * embeddings are computed by workers, as embed tiles).
 */
export async function embedSamples(inputs: ModelInputs, sets: SampleSets, why: string): Promise<{ embeddings: Float32Array; dim: number }> {
  const encoder = await loadOnnxEncoder(encoderPathOf(inputs, why), { padId: inputs.bundle.manifest.padId ?? inputs.bundle.manifest.eosId });
  try {
    return { embeddings: await encoder.embed(sampleSequences(inputs, sets)), dim: encoder.dim };
  } finally {
    await encoder.dispose();
  }
}

/** One embed tile of a job: its content key and the global samples of its rows, in run order. */
export type EmbedTileSpec = { id: string; rows: Uint32Array; runs: Uint32Array };

/** A job's embeddings as tiles: which samples each tile embeds, the encoder's width and key. */
export type EmbedPlan = { tiles: EmbedTileSpec[]; byId: Map<string, EmbedTileSpec>; dim: number; encoderKey: string; samples: number };

/** Padded tokens one embed tile holds at most (about 1.5 s of the tiny encoder on a CPU core). */
export const EMBED_TILE_TOKENS = 32_768;

/**
 * Cuts the job's embeddings into tiles. The runs are planned over the whole corpus exactly as the
 * coordinator's own encoder plans them (planBatches with the encoder's limits), then consecutive
 * runs are grouped into tiles of at most `tileTokens` padded tokens, so the workers run the same
 * shapes and return the same bytes as an encoder here would.
 */
export async function planEmbedTiles(inputs: ModelInputs, sets: SampleSets, tileTokens = EMBED_TILE_TOKENS): Promise<EmbedPlan> {
  const path = encoderPathOf(inputs, "the SE kernel");
  const padId = inputs.bundle.manifest.padId ?? inputs.bundle.manifest.eosId;
  const encoder = await loadOnnxEncoder(path, { padId });
  const dim = encoder.dim;
  await encoder.dispose();
  const encoderKey = encoderKeyOf(inputs, padId);
  const sequences = sampleSequences(inputs, sets);
  const batches = planBatches(sequences.map((s) => s.length), ENCODER_BATCH);
  const tiles: EmbedTileSpec[] = [];
  let group: number[][] = [];
  let tokens = 0;
  const flush = () => {
    if (group.length === 0) return;
    const rows = Uint32Array.from(group.flat());
    const runs = runSizes(group);
    const id = embedTileId(encoderKey, embedWorkOf(sequences, rows, runs));
    tiles.push({ id, rows, runs });
    group = [];
    tokens = 0;
  };
  for (const b of batches) {
    const padded = Math.max(1, ...b.map((k) => sequences[k].length)) * b.length;
    if (group.length > 0 && tokens + padded > tileTokens) flush();
    group.push(b);
    tokens += padded;
  }
  flush();
  // Two tiles with the same content (duplicate samples) are one tile.
  const byId = new Map<string, EmbedTileSpec>();
  for (const t of tiles) if (!byId.has(t.id)) byId.set(t.id, t);
  return { tiles, byId, dim, encoderKey, samples: sequences.length };
}

/** The encoder's identity: its files' hashes (the encoder and its external data) and the pad id. */
function encoderKeyOf(inputs: ModelInputs, padId: number): string {
  const file = inputs.bundle.manifest.files.encoder!;
  const hashes = Object.entries(inputs.bundle.fileHashes)
    .filter(([name]) => name === file || name.startsWith(`${file}.`) || name.startsWith(`${file}_`))
    .sort(([a], [b]) => (a < b ? -1 : 1));
  const h = createHash("sha256");
  for (const [name, hash] of hashes.length > 0 ? hashes : [["bundle", inputs.bundle.hash]]) h.update(`${name}\0${hash}\0`);
  return `${h.digest("hex")}/pad${padId}`;
}

function embedWorkOf(sequences: Int32Array[], rows: Uint32Array, runs: Uint32Array): EmbedTileWork {
  const offsets = new Uint32Array(rows.length + 1);
  rows.forEach((g, k) => (offsets[k + 1] = offsets[k] + sequences[g].length));
  const ids = new Int32Array(offsets[rows.length]);
  rows.forEach((g, k) => ids.set(sequences[g], offsets[k]));
  return { kind: "embed", sequences: { count: rows.length, ids, offsets }, runs };
}

/** The work of one embed tile (what its message carries). */
export function embedTileWork(inputs: ModelInputs, sets: SampleSets, tile: EmbedTileSpec): EmbedTileWork {
  const newline = inputs.tokenizer.encode("\n");
  const sequences: Int32Array[] = [];
  for (const g of tile.rows) {
    const t = sampleTokens(sets.tokens, g);
    const ids = new Int32Array(t.x.length + newline.length + t.y.length);
    ids.set(t.x, 0);
    ids.set(newline, t.x.length);
    ids.set(t.y, t.x.length + newline.length);
    sequences[g] = ids.subarray(0, inputs.prompts.maxLength);
  }
  return embedWorkOf(sequences, tile.rows, tile.runs);
}

/**
 * Checks an uploaded embed tile result: rows x dim finite values, each row of norm 1 (or 0, for an
 * empty sequence). Null when it is sound, else what is wrong.
 */
export function embedResultProblem(tileId: string, output: TileOutput, rows: number, dim: number): string | null {
  const d = output.distances;
  if (d.length !== rows * dim) return `embed tile ${tileId}: ${d.length} values, expected ${rows} x ${dim}`;
  if (output.truncated !== 0) return `embed tile ${tileId}: truncated count ${output.truncated}, expected 0`;
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = r * dim; k < (r + 1) * dim; k++) {
      if (!Number.isFinite(d[k])) return `embed tile ${tileId}: value ${k} is ${d[k]}`;
      s += d[k] * d[k];
    }
    if (s !== 0 && Math.abs(Math.sqrt(s) - 1) > 1e-3) return `embed tile ${tileId}: row ${r} has norm ${Math.sqrt(s)}, an embedding must be L2-normalised`;
  }
  return null;
}

/**
 * The job's embedding matrix (rows by global sample index) from its stored embed tiles, and kept
 * as one float32 .npy file in the tile store, named by the tiles' keys (the same samples and
 * encoder give the same file; `--embeddings` takes it when every sample is from the data file).
 */
export async function assembleEmbeddings(
  plan: EmbedPlan,
  read: (tileId: string) => Promise<TileOutput>,
  storeDir: string,
  onProgress?: (done: number, total: number) => void,
): Promise<{ data: Float32Array; file: string }> {
  const { dim } = plan;
  const data = new Float32Array(plan.samples * dim);
  let done = 0;
  for (const t of plan.tiles) {
    const out = await read(t.id);
    const problem = embedResultProblem(t.id, out, t.rows.length, dim);
    if (problem) throw new Error(`the tile store's copy of ${problem}`);
    t.rows.forEach((g, k) => data.set(out.distances.subarray(k * dim, (k + 1) * dim), g * dim));
    done += t.rows.length;
    onProgress?.(done, plan.samples);
  }
  const key = createHash("sha256").update(`delift-embeddings/1\0${plan.encoderKey}\0${plan.samples}\0${dim}\0`);
  for (const t of plan.tiles) key.update(t.id).update(new Uint8Array(t.rows.buffer, t.rows.byteOffset, t.rows.byteLength));
  const file = join(storeDir, "embeddings", `${key.digest("hex")}.npy`);
  if (!(await stat(file).then(() => true, () => false))) await writeNpyAtomically(file, data, dim);
  return { data, file };
}

async function writeNpyAtomically(file: string, data: Float32Array, dim: number): Promise<void> {
  await mkdir(join(file, ".."), { recursive: true });
  const tmp = `${file}.tmp-${randomUUID().slice(0, 8)}`;
  try {
    const handle = await open(tmp, "w");
    try {
      await handle.write(npyHeader("<f4", [data.length / dim, dim]));
      await handle.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
