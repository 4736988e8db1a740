import { randomUUID } from "node:crypto";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  type BlobStore,
  type Device,
  type EmbeddingMatrix,
  isWorkerHealthError,
  KnnEngine,
  parseSearchMatrixBlob,
  runSearchTile,
  searchMatrixBlobName,
  searchResultValues,
  type SearchTileWork,
  type TileOutput,
  WorkerHealthError,
} from "../../../common/src/mod.js";

/**
 * Search tiles on a worker (item 2): the job's embedding matrix is fetched once from the object
 * store by the SHA-256 its tiles name (and checked against it), the onnxruntime top-k engine is
 * created once; each tile is runSearchTile over the matrix, as the coordinator's thread runs it,
 * so the lists are the same bytes.
 */
export class SearchExecutor {
  private readonly matrices = new Map<string, Promise<EmbeddingMatrix>>();
  private engine: Promise<KnnEngine> | null = null;

  constructor(private readonly blobs: BlobStore, private readonly dir: string, private readonly runtime: { device: Device; threads?: number }) {}

  async compute(work: SearchTileWork, signal?: AbortSignal): Promise<TileOutput> {
    const matrix = await this.matrix(work.matrix);
    if (matrix.count !== work.rows || matrix.dim !== work.dim) {
      throw new Error(`search tile names a ${work.rows} x ${work.dim} matrix; blob ${work.matrix.slice(0, 12)} is ${matrix.count} x ${matrix.dim}`);
    }
    this.engine ??= KnnEngine.create(this.runtime);
    const engine = await this.engine;
    signal?.throwIfAborted();
    const lists = await runSearchTile(engine, matrix, { queries: work.queries, corpus: work.corpus }, work.k);
    return { distances: searchResultValues(lists), truncated: 0 };
  }

  /** Forgets the matrices no job needs any more. */
  retain(shas: Set<string>): void {
    for (const sha of this.matrices.keys()) if (!shas.has(sha)) this.matrices.delete(sha);
  }

  async dispose(): Promise<void> {
    this.matrices.clear();
    const e = this.engine;
    this.engine = null;
    await e?.then((x) => x.release()).catch(() => undefined);
  }

  private matrix(sha: string): Promise<EmbeddingMatrix> {
    let p = this.matrices.get(sha);
    if (!p) {
      p = this.fetch(sha);
      this.matrices.set(sha, p);
      p.catch(() => this.matrices.delete(sha));
    }
    return p;
  }

  private async fetch(sha: string): Promise<EmbeddingMatrix> {
    const name = searchMatrixBlobName(sha);
    const local = this.blobs.localPath?.(name);
    let path = local ?? null;
    if (!path) {
      await mkdir(this.dir, { recursive: true });
      path = join(this.dir, `${sha}.tmp-${randomUUID().slice(0, 8)}`);
    }
    try {
      if (!local) await this.blobs.getToFile(name, path);
      return parseSearchMatrixBlob(new Uint8Array(await readFile(path)), sha);
    } catch (err) {
      if (isWorkerHealthError(err)) throw err;
      // A fetch that fails (or a copy that does not hash right) is this worker's trouble: the blob is shared.
      throw new WorkerHealthError(`cannot fetch the search matrix ${sha.slice(0, 12)}: ${(err as Error).message}`, { cause: err });
    } finally {
      if (!local) await rm(path, { force: true });
    }
  }
}
