/**
 * Chunked kernels through an object store (the cluster's NATS object store, or any BlobStore):
 * the coordinator publishes the files as PREFIX/FILE objects, index last; a shard host fetches the
 * index and only the chunks its range needs into a scratch directory, reads them (size and
 * sha256 checked as on disk), and deletes the copies.
 */
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { BlobStore } from "../../bus/types.js";
import { ConfigError } from "../../errors.js";
import { CHUNKED_INDEX_FILE } from "../../kernel/chunked-format.js";
import { ChunkedKernel } from "../../kernel/chunked-reader.js";
import type { ColumnReader } from "./shard-host.js";

/** Puts every file of a chunked kernel directory into the store as PREFIX/FILE, the index last. */
export async function publishChunkedKernel(blobs: BlobStore, dir: string, prefix: string): Promise<void> {
  const opened = await ChunkedKernel.open(dir);
  const { index } = opened;
  const side = [index.baseline, index.rowIds, index.colIds].filter((s) => s !== null).map((s) => s!.file);
  for (const file of [...index.chunks.map((c) => c.file), ...side]) await blobs.putFile(`${prefix}/${file}`, join(dir, file));
  await blobs.putFile(`${prefix}/${CHUNKED_INDEX_FILE}`, join(dir, CHUNKED_INDEX_FILE));
}

/** A ColumnReader for blob-store sources: `open(bucket)` gives the store, `scratch` is where chunks land for the read. */
export function blobColumnReader(open: (bucket: string) => Promise<BlobStore>, scratch: string, fallback?: ColumnReader): ColumnReader {
  return async (source, colStart, colEnd) => {
    if (source.kind !== "blob-store") {
      if (fallback) return fallback(source, colStart, colEnd);
      throw new ConfigError(`cannot read a "${source.kind}" kernel source`);
    }
    const blobs = await open(source.bucket);
    await mkdir(scratch, { recursive: true });
    const dir = await mkdtemp(join(scratch, "shard-"));
    try {
      await blobs.getToFile(`${source.prefix}/${CHUNKED_INDEX_FILE}`, join(dir, CHUNKED_INDEX_FILE));
      const index = (await ChunkedKernel.open(dir, { partial: true })).index;
      for (const c of index.chunks) {
        if (c.colEnd > colStart && c.colStart < colEnd) await blobs.getToFile(`${source.prefix}/${c.file}`, join(dir, c.file));
      }
      const kernel = await (await ChunkedKernel.open(dir, { partial: true })).readColumns(colStart, colEnd);
      return { kernel, owned: true };
    } finally {
      await rm(dir, { recursive: true, force: true });
      if ((await readdir(scratch).catch(() => ["x"])).length === 0) await rm(scratch, { recursive: true, force: true });
    }
  };
}
