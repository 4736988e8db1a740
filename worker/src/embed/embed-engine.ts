import { AbortedError, type EmbedTileWork, runBatches, type SentenceEncoder, type TileOutput } from "../../../common/src/mod.js";

/**
 * Computes an embed tile: the encoder over the tile's sequences in exactly the runs the tile
 * names, one model run at a time (so a cancel stops between runs). The result is `count` x `dim`
 * float32 values, row k embedding sequence k, sent as the tile's values (truncated: 0, the
 * coordinator cut the sequences already).
 */
export async function computeEmbedTile(encoder: SentenceEncoder, work: EmbedTileWork, signal?: AbortSignal): Promise<TileOutput> {
  const { count, ids, offsets } = work.sequences;
  const sequences = Array.from({ length: count }, (_, k) => ids.subarray(offsets[k], offsets[k + 1]));
  const out = new Float32Array(count * encoder.dim);
  let at = 0;
  for (const batch of runBatches(work.runs)) {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new AbortedError();
    const rows = await encoder.embed(batch.map((k) => sequences[k]), [batch.map((_, b) => b)]);
    out.set(rows, at * encoder.dim);
    at += batch.length;
  }
  return { distances: out, truncated: 0 };
}

/** Token ids of an embed tile (for the vocabulary check). */
export function embedTokenIds(work: EmbedTileWork): Int32Array {
  return work.sequences.ids;
}
