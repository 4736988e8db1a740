/**
 * A worker's shard hosts: while a job's selection runs distributed (the coordinator lists it in
 * the jobs bucket's "selecting" record), the worker fetches the job's key over gRPC (the same
 * authenticated channel as for tiles) and serves a shard host in the job's pool, reading its
 * columns from the object store; once the job leaves the record, the host is closed and its
 * shards dropped. Requests and replies are signed with the job's selection secret: a message
 * without a valid signature is dropped, a malformed one answered with an error, never a crash.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { type BlobStore, errorFields, type KeyValueBucket, type Logger } from "../../../common/src/mod.js";
import {
  HmacAuthenticator,
  SELECTING_JOBS_KEY,
  ShardHost,
  blobColumnReader,
  decodeSelectingJobs,
  selectionPool,
  selectionSecret,
  serveShardHost,
  shardHostId,
  type ServedShardHost,
} from "../../../common/src/selection/distributed/mod.js";

export type ShardServiceOptions = {
  nc: NatsConnection;
  jobsKv: KeyValueBucket;
  workerId: string;
  /** The job's key, over the authenticated channel (ResultSender.jobKey). */
  jobKey(jobId: string): Promise<Uint8Array>;
  /** The object store a kernel's source names (only the cluster's own bucket is opened). */
  openStore(bucket: string): Promise<BlobStore>;
  /** Where fetched chunks lie while a shard reads them. */
  scratch: string;
  log: Logger;
  /** How often the "selecting" record is read (default 1 s). */
  pollMs?: number;
  /** Test hook (DELIFT_SELECT_HOLD_ROUND): stop answering at this round, as a host dying mid-round. */
  holdAtRound?: number;
};

export class ShardService {
  private readonly served = new Map<string, Promise<ServedShardHost | null>>();
  private readonly hostId: string;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> = Promise.resolve();
  private stopped = false;
  private lastProblem = "";
  /** Jobs this worker could not host (said once each). */
  private readonly refused = new Set<string>();

  constructor(private readonly o: ShardServiceOptions) {
    this.hostId = shardHostId(o.workerId);
  }

  start(): void {
    const tick = () => {
      this.ticking = this.ticking.then(() => this.tick()).catch(() => undefined);
    };
    tick();
    this.timer = setInterval(tick, this.o.pollMs ?? 1000);
    this.timer.unref();
  }

  /** The jobs this worker hosts shards for now. */
  jobs(): string[] {
    return [...this.served.keys()].sort();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    await Promise.all([...this.served.keys()].map((id) => this.close(id)));
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let wanted: string[];
    try {
      const raw = await this.o.jobsKv.get(SELECTING_JOBS_KEY);
      wanted = raw ? decodeSelectingJobs(raw) : [];
    } catch (err) {
      this.problem(`cannot read the selecting jobs: ${(err as Error).message}`, err);
      return;
    }
    for (const id of this.served.keys()) if (!wanted.includes(id)) await this.close(id);
    for (const id of this.refused) if (!wanted.includes(id)) this.refused.delete(id);
    for (const id of wanted) if (!this.served.has(id) && !this.stopped) this.served.set(id, this.serve(id));
  }

  private async serve(jobId: string): Promise<ServedShardHost | null> {
    const log = this.o.log.child({ job: jobId });
    try {
      const key = await this.o.jobKey(jobId);
      const openStore = (bucket: string) => this.o.openStore(bucket);
      const host = new ShardHost(this.hostId, { readColumns: blobColumnReader(openStore, `${this.o.scratch}/${jobId}`), log: (line) => log.debug(line) });
      const served = await serveShardHost(this.o.nc, {
        pool: selectionPool(jobId),
        host,
        auth: new HmacAuthenticator(selectionSecret(key)),
        log: (line) => log.debug(line),
        holdAtRound: this.o.holdAtRound,
      });
      log.info({ host: this.hostId }, `job ${jobId}: hosting selection shards (host ${this.hostId})`);
      return served;
    } catch (err) {
      // The job may have ended meanwhile (no key any more): try again on a later tick if it is still listed.
      if (!this.refused.has(jobId)) log.warn({ ...errorFields(err) }, `job ${jobId}: cannot host selection shards: ${(err as Error).message}`);
      this.refused.add(jobId);
      this.served.delete(jobId);
      return null;
    }
  }

  private async close(jobId: string): Promise<void> {
    const served = this.served.get(jobId);
    this.served.delete(jobId);
    const s = await served;
    if (!s) return;
    await s.close().catch(() => undefined);
    this.o.log.info({ job: jobId }, `job ${jobId}: selection over, shard host closed`);
  }

  private problem(line: string, err: unknown): void {
    if (line === this.lastProblem) return;
    this.lastProblem = line;
    this.o.log.warn({ ...errorFields(err) }, line);
  }
}
