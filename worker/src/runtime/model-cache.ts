import { mkdir, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { type BlobStore, type Device, modelBlobName, ModelError, openBundle } from "../../../common/src/mod.js";
import type { CausalLm } from "../model/causal-lm.js";
import { loadOnnxCausalLm } from "../model/onnx-causal-lm.js";

export function defaultModelCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "delift", "models");
}

/**
 * Model bundles by content hash: fetched once from the object store into a local cache, checked
 * against their hash, loaded once per process. A worker needs nothing but the bus to join a job.
 */
export class ModelCache {
  private readonly loaded = new Map<string, Promise<{ model: CausalLm; vocabSize: number | null }>>();

  constructor(
    private readonly blobs: BlobStore,
    private readonly dir: string,
    private readonly runtime: { device: Device; threads?: number },
  ) {}

  get(hash: string, files: string[]): Promise<{ model: CausalLm; vocabSize: number | null }> {
    let p = this.loaded.get(hash);
    if (!p) {
      p = this.load(hash, files);
      this.loaded.set(hash, p);
      p.catch(() => this.loaded.delete(hash));
    }
    return p;
  }

  async dispose(): Promise<void> {
    for (const p of this.loaded.values()) await p.then((m) => m.model.dispose()).catch(() => undefined);
    this.loaded.clear();
  }

  private async load(hash: string, files: string[]): Promise<{ model: CausalLm; vocabSize: number | null }> {
    // Any listed file locates the bundle (a plain export has no manifest.json); all must be there.
    const first = files[0] ?? "manifest.json";
    const local = this.blobs.localPath?.(modelBlobName(hash, first));
    const bundleDir = local ? local.slice(0, local.length - first.length - 1) : join(this.dir, hash);
    const present = (await Promise.all(files.map((f) => stat(join(bundleDir, f)).then(() => true, () => false)))).every(Boolean);
    if (!present) await this.fetch(hash, files, bundleDir);
    const bundle = await openBundle(bundleDir);
    if (bundle.hash !== hash) {
      await rm(bundleDir, { recursive: true, force: true });
      throw new ModelError(`model bundle ${hash} from the object store hashes to ${bundle.hash}: refusing it`);
    }
    const model = await loadOnnxCausalLm(bundle.modelPath, { ...this.runtime, padId: bundle.manifest.padId ?? bundle.manifest.eosId });
    const vocab = bundle.manifest.vocabSize;
    return { model, vocabSize: typeof vocab === "number" ? vocab : null };
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
      throw new ModelError(`cannot fetch model bundle ${hash}: ${(err as Error).message}`, { cause: err });
    }
  }
}
