import { type Device, isModelError, loadOnnxEncoder, type ModelBundle, ModelError, type SentenceEncoder, WorkerHealthError } from "../../../common/src/mod.js";

/** Where the encoder's bundle comes from: the worker's model cache (fetched and checked once). */
export type BundleSource = { bundle(hash: string, files: string[]): Promise<ModelBundle>; readonly runtimeOptions: { device: Device; threads?: number } };

export type EncoderLease = { encoder: SentenceEncoder; vocabSize: number | null; release(): void };

type Slot = { loading: Promise<{ encoder: SentenceEncoder; vocabSize: number | null }>; users: number; lastUsed: number };

/**
 * The bundles' sentence encoders, one onnxruntime session per bundle hash, on the worker's device
 * (the CUDA provider where the worker runs on a GPU, as for the LM). A session not used for
 * `idleMs` is released; one in use never is. A bundle without an encoder is the bundle's fault
 * (ModelError); a session that cannot be created for lack of resources is this worker's.
 */
export class EncoderCache {
  private readonly slots = new Map<string, Slot>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly source: BundleSource, private readonly idleMs = 10 * 60_000) {}

  async acquire(hash: string, files: string[]): Promise<EncoderLease> {
    let slot = this.slots.get(hash);
    if (!slot) {
      const fresh: Slot = { loading: this.load(hash, files), users: 0, lastUsed: Date.now() };
      slot = fresh;
      this.slots.set(hash, fresh);
      fresh.loading.catch(() => {
        if (this.slots.get(hash) === fresh) this.slots.delete(hash);
      });
    }
    slot.users++;
    try {
      const m = await slot.loading;
      const s = slot;
      let released = false;
      return {
        ...m,
        release: () => {
          if (released) return;
          released = true;
          s.users--;
          s.lastUsed = Date.now();
          this.arm();
        },
      };
    } catch (err) {
      slot.users--;
      throw err;
    }
  }

  async dispose(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const slots = [...this.slots.values()];
    this.slots.clear();
    for (const s of slots) await s.loading.then((m) => m.encoder.dispose()).catch(() => undefined);
  }

  private async load(hash: string, files: string[]): Promise<{ encoder: SentenceEncoder; vocabSize: number | null }> {
    const bundle = await this.source.bundle(hash, files);
    if (!bundle.encoderPath) throw new ModelError(`model bundle ${hash} has no encoder (manifest files.encoder): embed tiles need one`);
    const padId = bundle.manifest.padId ?? bundle.manifest.eosId;
    try {
      const encoder = await loadOnnxEncoder(bundle.encoderPath, { ...this.source.runtimeOptions, padId });
      const vocab = bundle.manifest.vocabSize;
      return { encoder, vocabSize: typeof vocab === "number" ? vocab : null };
    } catch (err) {
      // The file is checked against its hash: a session that will not load here for resources is this worker's fault.
      if (isModelError(err) && /memory|alloc|CUDA|provider/i.test((err as Error).message)) throw new WorkerHealthError(`cannot create the encoder session: ${(err as Error).message}`, { cause: err });
      throw err;
    }
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    const now = Date.now();
    for (const [hash, s] of this.slots) {
      if (s.users === 0 && now - s.lastUsed >= this.idleMs) {
        this.slots.delete(hash);
        void s.loading.then((m) => m.encoder.dispose()).catch(() => undefined);
      }
    }
    if ([...this.slots.values()].some((s) => s.users === 0)) {
      this.timer = setTimeout(() => this.arm(), this.idleMs);
      this.timer.unref();
    }
  }
}
