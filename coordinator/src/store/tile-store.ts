import { mkdir, open, readFile, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import type { TileOutput } from "../../../common/src/mod.js";
import { TileConflictError } from "./errors.js";
import { decodeTileFile, encodeTileFile } from "./tile-file.js";

export type PutOutcome = "stored" | "duplicate";

/** What putting a result found: stored now, or already there (and how far the new values are from it). */
export type PutOrCompare = { outcome: "stored" } | { outcome: "exists"; maxDiff: number; truncated: { stored: number; received: number } };

const TILE_ID = /^[0-9a-f]{64}$/;

/**
 * Durable, content-keyed store of tile results on local disk. A put is atomic (temp file,
 * fsync, rename, fsync of the directory), so a crash leaves either the whole tile or none.
 * Putting the same bytes again is a harmless duplicate; different bytes for a stored tile are
 * a conflict (tiles are deterministic, so that means a broken worker or mixed builds).
 */
export class TileStore {
  private readonly known = new Set<string>();
  /** Puts in flight per tile, so a duplicate arriving at the same moment is compared, not raced. */
  private readonly writing = new Map<string, Promise<PutOrCompare>>();

  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<TileStore> {
    const store = new TileStore(dir);
    await mkdir(join(dir, "tmp"), { recursive: true });
    await rm(join(dir, "tmp"), { recursive: true, force: true });
    await mkdir(join(dir, "tmp"), { recursive: true });
    for (const shard of await readdir(dir)) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      for (const name of await readdir(join(dir, shard))) {
        if (name.endsWith(".tile") && TILE_ID.test(name.slice(0, -5))) store.known.add(name.slice(0, -5));
      }
    }
    return store;
  }

  has(id: string): boolean {
    return this.known.has(id);
  }

  get size(): number {
    return this.known.size;
  }

  /** Stores the tile; same bytes again are a duplicate, different bytes a TileConflictError. */
  async put(id: string, output: TileOutput): Promise<PutOutcome> {
    const r = await this.putOrCompare(id, output);
    if (r.outcome === "stored") return "stored";
    if (r.maxDiff === 0 && r.truncated.stored === r.truncated.received) return "duplicate";
    throw new TileConflictError(id, `tile ${id} is already stored with different values (up to ${r.maxDiff} apart)`);
  }

  /**
   * Stores the tile durably, or, when it is already stored, compares: the caller decides what a
   * difference means (the job's machine: within its tolerance a duplicate, else a conflict). Puts
   * of one tile are serialised, so two uploads arriving together are compared, not raced.
   */
  async putOrCompare(id: string, output: TileOutput): Promise<PutOrCompare> {
    if (!TILE_ID.test(id)) throw new Error(`invalid tile id "${id}"`);
    const previous = this.writing.get(id);
    const next = (previous ?? Promise.resolve(null))
      .catch(() => null)
      .then(() => this.putNow(id, output));
    this.writing.set(id, next);
    try {
      return await next;
    } finally {
      if (this.writing.get(id) === next) this.writing.delete(id);
    }
  }

  private async putNow(id: string, output: TileOutput): Promise<PutOrCompare> {
    if (this.known.has(id)) {
      const stored = await this.get(id);
      return { outcome: "exists", maxDiff: maxAbsDifference(stored.distances, output.distances), truncated: { stored: stored.truncated, received: output.truncated } };
    }
    const bytes = encodeTileFile(output);
    const tmp = join(this.dir, "tmp", `${id}.${randomUUID()}`);
    const file = await open(tmp, "w");
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    await mkdir(join(this.dir, id.slice(0, 2)), { recursive: true });
    await rename(tmp, this.path(id));
    await syncDir(join(this.dir, id.slice(0, 2)));
    this.known.add(id);
    return { outcome: "stored" };
  }

  async get(id: string): Promise<TileOutput> {
    return decodeTileFile(await readFile(this.path(id)), this.path(id));
  }

  private path(id: string): string {
    return join(this.dir, id.slice(0, 2), `${id}.tile`);
  }
}

/**
 * Largest |a[k] - b[k]|; Infinity when the lengths differ. Distances and utilities differ by the
 * same amounts (UF = d0 - d1 with a shared d0), so this is the difference on utilities too.
 */
export function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  // Identical bits are no difference, NaN patterns included: search tiles carry uint32 ids as
  // float32 bits, and their padding id (0xFFFFFFFF) reads as NaN.
  const aBits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const bBits = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let max = 0;
  for (let k = 0; k < a.length; k++) {
    if (aBits[k] === bBits[k]) continue;
    const d = Math.abs(a[k] - b[k]);
    if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
  }
  return max;
}

/** Reads one stored tile without opening the store (the job's worker thread assembles kernels this way). */
export async function readStoredTile(dir: string, id: string): Promise<TileOutput> {
  if (!TILE_ID.test(id)) throw new Error(`invalid tile id "${id}"`);
  const path = join(dir, id.slice(0, 2), `${id}.tile`);
  return decodeTileFile(await readFile(path), path);
}

/** fsync of a directory, so a rename in it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
