import { randomUUID } from "node:crypto";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  type BlobStore,
  chunkIndexOf,
  type CorpusChunk,
  type CorpusChunkEntry,
  CorpusIntegrityError,
  type CorpusManifest,
  corpusObjectName,
  type CorpusRef,
  decodeCorpusChunk,
  decodeCorpusManifest,
  type IndexedTileWork,
  isCorpusIntegrityError,
  resolveTileWork,
  type SampleTokens,
  type TileWork,
  WorkerHealthError,
} from "../../../common/src/mod.js";

export type CorpusCacheLimits = {
  /** Most bytes of corpus chunks kept in memory, expanded (default 768 MiB); a tile's own chunk may go over by one. */
  maxBytes?: number;
};

type ChunkSlot = { sha: string; loading: Promise<CorpusChunk>; bytes: number; pins: number; loaded: boolean };
type ManifestSlot = { loading: Promise<CorpusManifest>; manifest: CorpusManifest | null; jobs: Set<string> };

/**
 * The corpora tiles index (issue 8 item 4), on a worker: a job's manifest and the chunks its tiles
 * need are fetched from the object store once and checked against their SHA-256 (the manifest's
 * against the digest the authenticated tile message names, each chunk's against the manifest),
 * then kept in memory, least recently used first out, within `maxBytes`. A tile is resolved chunk
 * by chunk, each chunk pinned only while its samples are copied out, so the bound holds however
 * widely a tile's samples are spread. Manifests (and chunks only they name) go with their jobs.
 *
 * A fetch that fails is this worker's problem (WorkerHealthError, as for model bundles); an
 * object that does not match its digest is a CorpusIntegrityError, a failure of the tile.
 */
export class CorpusCache {
  readonly stats = { fetches: 0, fetchedBytes: 0, hits: 0, evictions: 0, heldBytes: 0, peakBytes: 0 };
  private readonly chunks = new Map<string, ChunkSlot>();
  private readonly manifests = new Map<string, ManifestSlot>();
  private readonly maxBytes: number;

  constructor(
    private readonly blobs: BlobStore,
    /** Where fetched objects land briefly before they are read (nothing stays there). */
    private readonly dir: string,
    limits: CorpusCacheLimits = {},
  ) {
    this.maxBytes = limits.maxBytes ?? 768 * 2 ** 20;
  }

  /** The tile's self-contained work: its samples' tokens from the job's corpus, local positions. */
  async resolve(jobId: string, ref: CorpusRef, work: IndexedTileWork, signal?: AbortSignal): Promise<TileWork> {
    const manifest = await this.manifest(jobId, ref);
    const byChunk = new Map<number, number[]>();
    const add = (g: number) => {
      const c = chunkIndexOf(manifest, g);
      let list = byChunk.get(c);
      if (!list) byChunk.set(c, (list = []));
      list.push(g);
    };
    if (work.kind === "baseline") work.targets.forEach(add);
    else {
      const seen = new Set<Uint32Array>();
      for (const col of work.columns) {
        add(col.example);
        if (!seen.has(col.rows)) col.rows.forEach(add);
        seen.add(col.rows);
      }
    }
    const tokens = new Map<number, SampleTokens>();
    for (const c of [...byChunk.keys()].sort((a, b) => a - b)) {
      signal?.throwIfAborted();
      const entry = manifest.chunks[c];
      const slot = this.pin(entry, manifest.tokenBytes);
      try {
        const chunk = await slot.loading;
        for (const g of byChunk.get(c)!) {
          if (tokens.has(g)) continue;
          const k = g - chunk.start;
          const o = chunk.offsets;
          // Copies: the chunk can be evicted once this tile has what it needs.
          tokens.set(g, { x: Int32Array.from(chunk.ids.subarray(o[2 * k], o[2 * k + 1])), y: Int32Array.from(chunk.ids.subarray(o[2 * k + 1], o[2 * k + 2])) });
        }
      } finally {
        slot.pins--;
        this.evict();
      }
    }
    return resolveTileWork(work, (g) => tokens.get(g)!);
  }

  /** The job has ended on this worker: its manifest goes, and the chunks no other job's manifest names. */
  forget(jobId: string): void {
    for (const [digest, slot] of [...this.manifests]) {
      slot.jobs.delete(jobId);
      if (slot.jobs.size === 0) this.manifests.delete(digest);
    }
    const named = new Set<string>();
    for (const slot of this.manifests.values()) slot.manifest?.chunks.forEach((c) => named.add(c.sha256));
    for (const [sha, slot] of [...this.chunks]) {
      if (named.has(sha) || slot.pins > 0) continue;
      this.chunks.delete(sha);
      if (slot.loaded) this.stats.heldBytes -= slot.bytes;
    }
  }

  private manifest(jobId: string, ref: CorpusRef): Promise<CorpusManifest> {
    let slot = this.manifests.get(ref.digest);
    if (!slot) {
      const fresh: ManifestSlot = { loading: null as unknown as Promise<CorpusManifest>, manifest: null, jobs: new Set() };
      fresh.loading = this.fetch(ref.digest).then((bytes) => (fresh.manifest = decodeCorpusManifest(bytes, ref)));
      slot = fresh;
      this.manifests.set(ref.digest, fresh);
      fresh.loading.catch(() => {
        if (this.manifests.get(ref.digest) === fresh) this.manifests.delete(ref.digest);
      });
    }
    slot.jobs.add(jobId);
    // The count is part of what the tile message vouches for: a manifest cached for another count does not do.
    return slot.loading.then((m) => {
      if (m.count !== ref.count) throw new CorpusIntegrityError(`corpus manifest ${ref.digest.slice(0, 12)} holds ${m.count} samples, the tile message says ${ref.count}`);
      return m;
    });
  }

  private pin(entry: CorpusChunkEntry, width: 2 | 4): ChunkSlot {
    let slot = this.chunks.get(entry.sha256);
    if (slot) {
      this.stats.hits++;
      // Most recently used last.
      this.chunks.delete(entry.sha256);
      this.chunks.set(entry.sha256, slot);
    } else {
      const fresh: ChunkSlot = { sha: entry.sha256, loading: null as unknown as Promise<CorpusChunk>, bytes: entry.rawBytes, pins: 0, loaded: false };
      fresh.loading = this.fetch(entry.sha256).then((bytes) => {
        const chunk = decodeCorpusChunk(bytes, entry, width);
        fresh.loaded = true;
        if (this.chunks.get(entry.sha256) === fresh) {
          this.stats.heldBytes += fresh.bytes;
          this.stats.peakBytes = Math.max(this.stats.peakBytes, this.stats.heldBytes);
        }
        return chunk;
      });
      fresh.loading.catch(() => {
        if (this.chunks.get(entry.sha256) === fresh) this.chunks.delete(entry.sha256);
      });
      slot = fresh;
      this.chunks.set(entry.sha256, fresh);
    }
    slot.pins++;
    return slot;
  }

  private evict(): void {
    for (const [sha, slot] of this.chunks) {
      if (this.stats.heldBytes <= this.maxBytes) return;
      if (slot.pins > 0 || !slot.loaded) continue;
      this.chunks.delete(sha);
      this.stats.heldBytes -= slot.bytes;
      this.stats.evictions++;
    }
  }

  /** An object's bytes as stored. */
  private async fetch(sha: string): Promise<Uint8Array> {
    const name = corpusObjectName(sha);
    const local = this.blobs.localPath?.(name);
    let bytes: Uint8Array;
    try {
      if (local) bytes = await readFile(local);
      else {
        await mkdir(this.dir, { recursive: true });
        const path = join(this.dir, `${sha}.${randomUUID().slice(0, 8)}`);
        try {
          await this.blobs.getToFile(name, path);
          bytes = await readFile(path);
        } finally {
          await rm(path, { force: true });
        }
      }
    } catch (err) {
      if (isCorpusIntegrityError(err)) throw err;
      throw new WorkerHealthError(`cannot fetch corpus object ${sha.slice(0, 12)}: ${(err as Error).message}`, { cause: err });
    }
    this.stats.fetches++;
    this.stats.fetchedBytes += bytes.byteLength;
    return bytes;
  }
}
