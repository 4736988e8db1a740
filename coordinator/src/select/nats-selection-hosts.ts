/**
 * The job's workers as shard hosts, over NATS. Opening a selection: the chunked kernel goes into
 * the object store under select/JOB/SESSION/, the job joins the "selecting" record of the jobs
 * bucket (workers poll it, fetch the job's key over gRPC and serve a shard host in the job's pool),
 * and a transport waits for the hosts to announce themselves. Messages are signed with a secret
 * derived from the job's tile key (HMAC), so NATS credentials alone cannot forge a shard's answer.
 * Closing removes the job from the record and deletes the kernel's objects; opening first deletes
 * any left from an earlier session of the job (a coordinator that died mid-selection).
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { type BlobStore, type KeyValueBucket, MODELS_BUCKET } from "../../../common/src/mod.js";
import { AbortedError } from "../../../common/src/mod.js";
import {
  HmacAuthenticator,
  NatsShardTransport,
  SELECTING_JOBS_KEY,
  decodeSelectingJobs,
  encodeSelectingJobs,
  publishChunkedKernel,
  selectionKernelPrefix,
  selectionPool,
  selectionSecret,
  type HostReply,
  type HostRequest,
  type ShardTransport,
} from "../../../common/src/selection/distributed/mod.js";
import type { OpenedHosts, SelectionHosts } from "./sharded-job.js";

export type NatsSelectionHostsOptions = {
  nc: NatsConnection;
  jobsKv: KeyValueBucket;
  /** Worker heartbeats: how many hosts to wait for before the first round. */
  workersKv: KeyValueBucket;
  /** The models object store (workers can read it): kernels travel there. */
  blobs: BlobStore;
  /** How long to wait for every live worker to announce itself before starting with those that did (default 5 s). */
  gatherMs?: number;
};

export class NatsSelectionHosts implements SelectionHosts {
  readonly autoShard = true;
  private readonly selecting = new Set<string>();
  private recordWrite: Promise<void> = Promise.resolve();
  private objects: Promise<ObjectStore> | null = null;

  constructor(private readonly o: NatsSelectionHostsOptions) {}

  async open(o: Parameters<SelectionHosts["open"]>[0]): Promise<OpenedHosts> {
    const pool = selectionPool(o.jobId);
    await this.deleteKernels(`select/${pool}/`).catch((err) => o.log(`could not delete an earlier selection's kernel: ${(err as Error).message}`));
    const prefix = selectionKernelPrefix(o.jobId, o.session);
    let transport: NatsShardTransport | null = null;
    const close = async () => {
      await transport?.close();
      await this.setSelecting(o.jobId, false).catch((err) => o.log(`could not update the selecting-jobs record: ${(err as Error).message}`));
      await this.deleteKernels(`${prefix}/`).catch((err) => o.log(`could not delete the selection's kernel objects: ${(err as Error).message}`));
    };
    try {
      await publishChunkedKernel(this.o.blobs, o.kernelDir, prefix);
      o.signal.throwIfAborted();
      await this.setSelecting(o.jobId, true);
      const workers = (await this.o.workersKv.keys().catch(() => [])).length;
      transport = await NatsShardTransport.start(this.o.nc, {
        pool,
        auth: new HmacAuthenticator(selectionSecret(o.key)),
        minHosts: Math.max(1, workers),
        waitMs: this.o.gatherMs ?? 5000,
        log: o.log,
      });
      return { transport: new PatientTransport(transport, o.log), source: { kind: "blob-store", bucket: MODELS_BUCKET, prefix }, close };
    } catch (err) {
      await close();
      throw err;
    }
  }

  /**
   * At the coordinator's start (it holds the cluster lease: no selection of another runs): no job
   * is selecting, and objects left by a selection that died with an earlier coordinator go.
   */
  async reset(): Promise<void> {
    await this.setSelecting("", false);
    await this.deleteKernels("select/");
  }

  /** Adds or removes a job in the "selecting" record (writes in order: a slow early one must not undo a later one). */
  private setSelecting(jobId: string, on: boolean): Promise<void> {
    if (on) this.selecting.add(jobId);
    else if (jobId) this.selecting.delete(jobId);
    const next = this.recordWrite.catch(() => undefined).then(() => this.o.jobsKv.put(SELECTING_JOBS_KEY, encodeSelectingJobs([...this.selecting])));
    this.recordWrite = next;
    return next;
  }

  private async deleteKernels(prefix: string): Promise<void> {
    this.objects ??= new Objm(this.o.nc).open(MODELS_BUCKET, true);
    const store = await this.objects;
    for (const info of await store.list()) if (info.name.startsWith(prefix) && !info.deleted) await store.delete(info.name);
  }
}

/** Reads the record as a worker does (tests, `delift doctor`): the jobs selecting now. */
export async function selectingJobs(jobsKv: KeyValueBucket): Promise<string[]> {
  const raw = await jobsKv.get(SELECTING_JOBS_KEY);
  return raw ? decodeSelectingJobs(raw) : [];
}

/**
 * A transport whose hosts() waits (until cancelled) for at least one host instead of answering
 * "none": a selection whose workers are all away waits for one to come, as tiles do.
 */
class PatientTransport implements ShardTransport {
  constructor(private readonly inner: NatsShardTransport, private readonly log: (line: string) => void) {}

  async hosts(signal?: AbortSignal): Promise<string[]> {
    let said = false;
    for (;;) {
      const hosts = await this.inner.hosts(signal);
      if (hosts.length > 0) return hosts;
      if (signal?.aborted) throw new AbortedError("selection cancelled");
      if (!said) this.log("waiting for a worker to host selection shards (start delift worker processes; their NATS user needs the delift.select subjects of deploy/nats/permissions.json)");
      said = true;
    }
  }

  request(host: string, request: HostRequest, signal?: AbortSignal): Promise<HostReply> {
    return this.inner.request(host, request, signal);
  }

  traffic(): { sent: number; received: number } {
    return this.inner.traffic();
  }
}
