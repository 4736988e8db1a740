import { mkdir, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { type BlobStore, type Device, type ModelBundle, isModelError, isWorkerHealthError, modelBlobName, ModelError, openBundle, WorkerHealthError } from "../../../common/src/mod.js";
import type { CausalLm } from "../model/causal-lm.js";
import { loadOnnxCausalLm } from "../model/onnx-causal-lm.js";

export function defaultModelCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "delift", "models");
}

export type LoadedModel = { model: CausalLm; vocabSize: number | null };

/** A model lent to one tile; release() when the tile is done with it. */
export type ModelLease = LoadedModel & { release(): void };

export type ModelCacheLimits = {
  /** Most sessions kept loaded at once (default 2). */
  maxModels?: number;
  /** Most bytes of model files behind the loaded sessions (default 8 GiB). */
  maxBytes?: number;
  /** A session not used for this long is disposed (default 10 minutes). */
  idleMs?: number;
};

type Slot = { hash: string; loading: Promise<LoadedModel & { bytes: number }>; bytes: number; users: number; lastUsed: number; loaded: boolean };

/**
 * Model bundles by content hash: fetched once from the object store into a local cache, checked
 * against their hash, loaded into an onnxruntime session when a tile needs them. Sessions are
 * evicted when idle, and the least recently used idle ones when more than maxModels or maxBytes are
 * loaded, so a worker serving many jobs over days does not keep every model in memory. A session
 * in use is never evicted. Fetch failures are this worker's fault (WorkerHealthError); a bundle
 * that does not match its hash is the bundle's (ModelError).
 */
export class ModelCache {
  private readonly slots = new Map<string, Slot>();
  private readonly limits: Required<ModelCacheLimits>;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly blobs: BlobStore,
    private readonly dir: string,
    private readonly runtime: { device: Device; threads?: number },
    limits: ModelCacheLimits = {},
  ) {
    this.limits = { maxModels: limits.maxModels ?? 2, maxBytes: limits.maxBytes ?? 8 * 1024 ** 3, idleMs: limits.idleMs ?? 10 * 60_000 };
  }

  /** Loads (or reuses) the model and lends it; the caller must release() the lease. */
  async acquire(hash: string, files: string[]): Promise<ModelLease> {
    let slot = this.slots.get(hash);
    if (!slot) {
      const loading = this.load(hash, files);
      const fresh: Slot = { hash, loading, bytes: 0, users: 0, lastUsed: Date.now(), loaded: false };
      slot = fresh;
      this.slots.set(hash, fresh);
      loading.then(
        (m) => {
          fresh.bytes = m.bytes;
          fresh.loaded = true;
          this.evict();
        },
        () => {
          if (this.slots.get(hash) === fresh) this.slots.delete(hash);
        },
      );
    }
    slot.users++;
    slot.lastUsed = Date.now();
    try {
      const m = await slot.loading;
      const s = slot;
      let released = false;
      return {
        model: m.model,
        vocabSize: m.vocabSize,
        release: () => {
          if (released) return;
          released = true;
          s.users--;
          s.lastUsed = Date.now();
          this.evict();
        },
      };
    } catch (err) {
      slot.users--;
      throw err;
    }
  }

  /**
   * Loads (or reuses) the model without lending it: it stays loaded until evicted (idle, or over
   * the limits). For callers outside the worker loop (tools, tests); tiles use acquire().
   */
  async get(hash: string, files: string[]): Promise<LoadedModel> {
    const lease = await this.acquire(hash, files);
    lease.release();
    return { model: lease.model, vocabSize: lease.vocabSize };
  }

  /** Loaded sessions (hash, bytes, users), for heartbeats and tests. */
  loaded(): { hash: string; bytes: number; users: number }[] {
    return [...this.slots.values()].filter((s) => s.loaded).map((s) => ({ hash: s.hash, bytes: s.bytes, users: s.users }));
  }

  async dispose(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const slots = [...this.slots.values()];
    this.slots.clear();
    for (const s of slots) await s.loading.then((m) => m.model.dispose()).catch(() => undefined);
  }

  /** Disposes idle sessions past their idle time, then least recently used idle ones over the limits. */
  private evict(): void {
    const now = Date.now();
    const idle = () => [...this.slots.values()].filter((s) => s.loaded && s.users === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const s of idle()) if (now - s.lastUsed >= this.limits.idleMs) this.drop(s);
    const loaded = () => [...this.slots.values()].filter((s) => s.loaded);
    const bytes = () => loaded().reduce((sum, s) => sum + s.bytes, 0);
    for (const s of idle()) {
      if (loaded().length <= this.limits.maxModels && bytes() <= this.limits.maxBytes) break;
      this.drop(s);
    }
    this.armIdleTimer();
  }

  private drop(s: Slot): void {
    if (this.slots.get(s.hash) !== s) return;
    this.slots.delete(s.hash);
    void s.loading.then((m) => m.model.dispose()).catch(() => undefined);
  }

  private armIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const idle = [...this.slots.values()].filter((s) => s.loaded && s.users === 0);
    if (idle.length === 0) return;
    const next = Math.min(...idle.map((s) => s.lastUsed + this.limits.idleMs)) - Date.now();
    this.idleTimer = setTimeout(() => this.evict(), Math.max(10, next));
    this.idleTimer.unref();
  }

  /** How this cache's sessions run (device, threads): other sessions of the worker run alike. */
  get runtimeOptions(): { device: Device; threads?: number } {
    return this.runtime;
  }

  /**
   * The bundle's local copy, fetched from the object store when missing and checked against its
   * hash, without loading its model (the worker's encoder sessions use this).
   */
  async bundle(hash: string, files: string[]): Promise<ModelBundle> {
    let p = this.bundles.get(hash);
    if (!p) {
      p = this.localBundle(hash, files);
      this.bundles.set(hash, p);
      p.catch(() => this.bundles.delete(hash));
    }
    return p;
  }

  private readonly bundles = new Map<string, Promise<ModelBundle>>();

  private async localBundle(hash: string, files: string[]): Promise<ModelBundle> {
    // Any listed file locates the bundle (a plain export has no manifest.json); all must be there.
    const first = files[0] ?? "manifest.json";
    const local = this.blobs.localPath?.(modelBlobName(hash, first));
    const bundleDir = local ? local.slice(0, local.length - first.length - 1) : join(this.dir, hash);
    const present = (await Promise.all(files.map((f) => stat(join(bundleDir, f)).then(() => true, () => false)))).every(Boolean);
    if (!present) await this.fetch(hash, files, bundleDir);
    const bundle = await openBundle(bundleDir);
    if (bundle.hash !== hash) {
      if (!local) await rm(bundleDir, { recursive: true, force: true });
      throw new ModelError(`model bundle ${hash} from the object store hashes to ${bundle.hash}: refusing it`);
    }
    return bundle;
  }

  private async load(hash: string, files: string[]): Promise<LoadedModel & { bytes: number }> {
    const bundle = await this.localBundle(hash, files);
    const bundleDir = bundle.dir;
    const model = await loadOnnxCausalLm(bundle.modelPath, { ...this.runtime, padId: bundle.manifest.padId ?? bundle.manifest.eosId });
    const vocab = bundle.manifest.vocabSize;
    let bytes = 0;
    for (const f of files) bytes += await stat(join(bundleDir, f)).then((s) => s.size, () => 0);
    return { model, vocabSize: typeof vocab === "number" ? vocab : null, bytes };
  }

  private async fetch(hash: string, files: string[], bundleDir: string): Promise<void> {
    const tmp = `${bundleDir}.tmp-${randomUUID().slice(0, 8)}`;
    await mkdir(tmp, { recursive: true });
    try {
      for (const file of files) {
        const path = join(tmp, file);
        await mkdir(join(path, ".."), { recursive: true });
        await this.blobs.getToFile(modelBlobName(hash, file), path);
      }
      await rm(bundleDir, { recursive: true, force: true });
      await rename(tmp, bundleDir);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      if (isModelError(err) || isWorkerHealthError(err)) throw err;
      // The object store is shared: a fetch that fails here (network, disk) is this worker's problem.
      throw new WorkerHealthError(`cannot fetch model bundle ${hash}: ${(err as Error).message}`, { cause: err });
    }
  }
}
