import { mkdir, open, readFile, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import type { TileOutput } from "../../../common/src/mod.js";
import { TileConflictError } from "./errors.js";
import { decodeTileFile, encodeTileFile } from "./tile-file.js";

export type PutOutcome = "stored" | "duplicate";

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
  private readonly writing = new Map<string, Promise<PutOutcome>>();

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

  async put(id: string, output: TileOutput): Promise<PutOutcome> {
    if (!TILE_ID.test(id)) throw new Error(`invalid tile id "${id}"`);
    const previous = this.writing.get(id);
    const next = (previous ?? Promise.resolve("stored" as PutOutcome))
      .catch(() => "stored" as PutOutcome)
      .then(() => this.putNow(id, encodeTileFile(output)));
    this.writing.set(id, next);
    try {
      return await next;
    } finally {
      if (this.writing.get(id) === next) this.writing.delete(id);
    }
  }

  private async putNow(id: string, bytes: Uint8Array): Promise<PutOutcome> {
    if (this.known.has(id)) {
      const stored = await readFile(this.path(id));
      if (Buffer.compare(stored, bytes) === 0) return "duplicate";
      throw new TileConflictError(id, `tile ${id} is already stored with different values (non-deterministic worker or mixed builds)`);
    }
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
    return "stored";
  }

  async get(id: string): Promise<TileOutput> {
    return decodeTileFile(await readFile(this.path(id)), this.path(id));
  }

  private path(id: string): string {
    return join(this.dir, id.slice(0, 2), `${id}.tile`);
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
