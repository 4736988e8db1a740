/**
 * The coordinator's side of distributed selection.
 *
 * Bands (the default): the coordinator keeps the per-row coverage cur (n float32) and every pick;
 * shards keep a copy of cur, their columns and each column's bound (its last gain). A round has a
 * threshold tau: each shard evaluates the open columns whose bound reaches tau and ships those
 * whose gain does, with the entries that can still raise coverage. The coordinator runs lazy
 * greedy over the shipped candidates, recomputing a gain from those entries whenever a pick of
 * this round came after it was computed, and accepts the fresh top while its gain is at least tau.
 * Every column left behind has a gain below tau, at most the accepted one's, so each accepted pick
 * is the global greedy choice (ties to the lower column): the selection is exactly lazy greedy's,
 * pick for pick and gain for gain, whatever the number of shards, the thresholds or the timing of
 * answers. The next round brings the coverage changes and picks to every shard and lowers tau
 * (tau *= 1 - bandWidth, or the largest bound left if lower).
 *
 * Partition (partition-and-merge, RandGreeDi-like, for comparison): fixed parts run lazy greedy
 * locally, each against its own coverage, for oversample * k * (its share) picks; then bands over
 * the union of those picks alone choose the k.
 *
 * Faults: a host that is lost (or that answers something that does not check out) has its shards
 * moved to the live host with the fewest; the new host loads the range and the coordinator's
 * current coverage and picks, and the round is asked again. Shards' answers depend only on that
 * state, so the result is the same as without the fault.
 */
import { AbortedError, ConfigError, InputError, ProtocolError } from "../../errors.js";
import { atOrBefore, CandidateHeap } from "./candidate-heap.js";
import { NoShardHostsError, ShardFailedError, ShardNotLoadedError, isHostLostError } from "./errors.js";
import { partQuotas } from "./layout.js";
import type { ShardTransport } from "./transport.js";
import type {
  DistributedHooks,
  DistributedReport,
  DistributedResult,
  DistributedSettings,
  HostReply,
  HostRequest,
  KernelSourceSpec,
  LoadRequest,
  ShardCandidates,
  ShardRange,
  ShardScaling,
} from "./types.js";

export type DistributedPlan = {
  session: string;
  nRows: number;
  nCols: number;
  /** Contiguous column ranges covering [0, nCols) in order. */
  shards: ShardRange[];
  /** partition: the parts, each inside one shard. */
  parts: { colStart: number; colEnd: number }[];
  source: KernelSourceSpec;
  scaling: ShardScaling;
};

const DEFAULT_BAND_WIDTH = 0.05;
const DEFAULT_CANDIDATE_LIMIT = 65_536;
/** A shard that fails this often (on any hosts) fails the selection. */
const MAX_SHARD_FAILURES = 5;

export async function runDistributedSelection(
  plan: DistributedPlan,
  transport: ShardTransport,
  settings: DistributedSettings,
  hooks: DistributedHooks = {},
): Promise<DistributedResult> {
  return new DistributedRun(plan, transport, settings, hooks).run();
}

/** A growable list of row indices. */
class RowList {
  data = new Uint32Array(1024);
  length = 0;
  push(r: number): void {
    if (this.length === this.data.length) {
      const grown = new Uint32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = r;
  }
}

class DistributedRun {
  private readonly cur: Float32Array;
  private readonly base: Float32Array | null;
  private readonly selected: Uint8Array;
  private allowed: Uint8Array | null = null;
  private readonly order: Uint32Array;
  private readonly gains: Float64Array;
  private picked = 0;
  private curTouched = false;
  private readonly assignment = new Map<number, string>();
  private readonly needsLoad = new Set<number>();
  private readonly failures = new Map<number, number>();
  private live: string[] = [];
  private readonly rangeOf = new Map<number, ShardRange>();
  private readonly stats = { rounds: 0, shardEvaluations: 0, coordinatorEvaluations: 0, candidatesShipped: 0, reassignments: 0 };
  private readonly bandWidth: number;
  private readonly limit: number;
  private readonly touchedAt: Uint32Array;

  constructor(
    private readonly plan: DistributedPlan,
    private readonly transport: ShardTransport,
    private readonly settings: DistributedSettings,
    private readonly hooks: DistributedHooks,
  ) {
    const { nRows, nCols, shards } = plan;
    const { k, objective } = settings;
    if (!Number.isInteger(k) || k < 1 || k > nCols) throw new ConfigError(`budget k = ${k} out of range: must be an integer between 1 and ${nCols} (the number of columns)`);
    let next = 0;
    for (const s of shards) {
      if (s.colStart !== next || s.colEnd <= s.colStart) throw new ConfigError(`shards must cover the columns in order (shard ${s.id} starts at ${s.colStart}, expected ${next})`);
      next = s.colEnd;
      this.rangeOf.set(s.id, s);
    }
    if (next !== nCols || this.rangeOf.size !== shards.length) throw new ConfigError(`shards cover ${next} of ${nCols} columns`);
    this.bandWidth = settings.bandWidth ?? DEFAULT_BAND_WIDTH;
    if (!(this.bandWidth > 0 && this.bandWidth < 1)) throw new ConfigError(`bandWidth must satisfy 0 < w < 1, got ${this.bandWidth}`);
    this.limit = settings.candidateLimit ?? DEFAULT_CANDIDATE_LIMIT;
    if (!Number.isInteger(this.limit) || this.limit < 1) throw new ConfigError(`candidateLimit must be a positive integer, got ${this.limit}`);
    this.cur = new Float32Array(nRows);
    this.base = null;
    if (objective.kind === "flmi" && objective.cap.length !== nRows) throw new ConfigError(`cap has ${objective.cap.length} entries, the kernel ${nRows} rows`);
    if (objective.kind === "flcg") {
      if (objective.base.length !== nRows) throw new ConfigError(`base has ${objective.base.length} entries, the kernel ${nRows} rows`);
      this.base = objective.base;
      this.cur.set(objective.base);
    }
    this.selected = new Uint8Array(nCols);
    this.order = new Uint32Array(k);
    this.gains = new Float64Array(k);
    this.touchedAt = new Uint32Array(nRows);
  }

  async run(): Promise<DistributedResult> {
    const started = performance.now();
    const { shards } = this.plan;
    this.live = await this.transport.hosts(this.hooks.signal);
    if (this.live.length === 0) throw new NoShardHostsError("no shard host is available");
    shards.forEach((s, i) => {
      this.assignment.set(s.id, this.live[i % this.live.length]);
      this.needsLoad.add(s.id);
    });
    const ids = shards.map((s) => s.id);
    const maxBound = new Map<number, number>();
    await this.forShards(ids, null, (reply) => {
      if (reply.kind !== "loaded") throw new ProtocolError(`expected a load reply, got "${reply.kind}"`);
      for (const s of reply.shards) maxBound.set(s.id, s.maxBound);
    }, maxBound);
    const loaded = performance.now();

    if (this.settings.algorithm === "partition") await this.partitionStep(ids, maxBound);
    const local = performance.now();

    let tau = Math.max(0, ...maxBound.values());
    let updateRows: Uint32Array = new Uint32Array(0);
    let updateValues: Float32Array = new Float32Array(0);
    let lastPicks: Uint32Array = new Uint32Array(0);
    while (this.picked < this.settings.k && tau > 0) {
      this.hooks.signal?.throwIfAborted();
      const round = ++this.stats.rounds;
      const before = this.transport.traffic();
      const replies = new Map<number, ShardCandidates>();
      const request = (ids: number[]): HostRequest => ({ kind: "round", session: this.plan.session, round, tau, limit: this.limit, shards: ids, updateRows, updateValues, picked: lastPicks });
      await this.forShards(ids, request, (reply, shardIds) => this.acceptRound(reply, shardIds, round, tau, replies));
      const pickedBefore = this.picked;
      const outcome = this.processRound([...replies.values()].sort((a, b) => a.id - b.id), tau, round);
      updateRows = outcome.updateRows;
      updateValues = Float32Array.from(updateRows, (r) => this.cur[r]);
      lastPicks = this.order.slice(pickedBefore, this.picked);
      let left = outcome.maxBound;
      for (const r of replies.values()) if (r.maxBound > left) left = r.maxBound;
      const after = this.transport.traffic();
      await this.hooks.onRound?.({
        round,
        tau,
        picked: this.picked,
        candidates: outcome.candidates,
        bytesSent: after.sent - before.sent,
        bytesReceived: after.received - before.received,
      });
      if (!outcome.truncated) tau = Math.min(tau * (1 - this.bandWidth), left);
    }
    // Every gain left is 0: lazy greedy then takes the remaining columns in index order.
    for (let j = 0; j < this.plan.nCols && this.picked < this.settings.k; j++) {
      if (this.selected[j] === 0 && (this.allowed === null || this.allowed[j] === 1)) this.pick(j, 0);
    }
    if (this.picked < this.settings.k) throw new ShardFailedError(`only ${this.picked} of ${this.settings.k} columns could be picked`);
    await this.release();
    const ended = performance.now();
    const traffic = this.transport.traffic();
    const distributed: DistributedReport = {
      algorithm: this.settings.algorithm,
      shards: this.plan.shards.length,
      hosts: new Set(this.assignment.values()).size,
      rounds: this.stats.rounds,
      shardEvaluations: this.stats.shardEvaluations,
      coordinatorEvaluations: this.stats.coordinatorEvaluations,
      candidatesShipped: this.stats.candidatesShipped,
      bytesSent: traffic.sent,
      bytesReceived: traffic.received,
      reassignments: this.stats.reassignments,
      seconds: { load: (loaded - started) / 1000, local: (local - loaded) / 1000, rounds: (ended - local) / 1000, total: (ended - started) / 1000 },
    };
    return {
      order: this.order,
      gains: this.gains,
      value: this.value(),
      evaluations: this.stats.shardEvaluations + this.stats.coordinatorEvaluations,
      distributed,
    };
  }

  /** Partition-and-merge's first step: local greedy in each part, then only the union of their picks stays allowed. */
  private async partitionStep(ids: number[], maxBound: Map<number, number>): Promise<void> {
    const { parts } = this.plan;
    const quotas = partQuotas(parts, this.settings.k, this.settings.oversample ?? 2);
    const shardOf = (p: { colStart: number; colEnd: number }) => {
      const s = this.plan.shards.find((r) => r.colStart <= p.colStart && p.colEnd <= r.colEnd);
      if (!s) throw new ConfigError(`part [${p.colStart}, ${p.colEnd}) lies in no single shard`);
      return s.id;
    };
    const partShard = parts.map(shardOf);
    const picks = new Map<number, Uint32Array>();
    await this.forShards(
      ids,
      (shardIds) => ({
        kind: "local",
        session: this.plan.session,
        parts: parts.flatMap((p, i) => (shardIds.includes(partShard[i]) ? [{ shard: partShard[i], colStart: p.colStart, colEnd: p.colEnd, quota: quotas[i] }] : [])),
      }),
      (reply, shardIds) => {
        if (reply.kind !== "local") throw new ProtocolError(`expected a local reply, got "${reply.kind}"`);
        for (const part of reply.parts) {
          const i = parts.findIndex((p) => p.colStart === part.colStart);
          if (i < 0 || !shardIds.includes(partShard[i]) || part.shard !== partShard[i]) throw new ProtocolError(`local reply names a part it was not asked for`);
          const p = parts[i];
          const seen = new Set<number>();
          for (const j of part.picks) {
            if (j < p.colStart || j >= p.colEnd || seen.has(j)) throw new ProtocolError(`local reply: pick ${j} outside its part or repeated`);
            seen.add(j);
          }
          if (part.picks.length !== Math.min(quotas[i], p.colEnd - p.colStart)) throw new ProtocolError(`local reply: ${part.picks.length} picks for a quota of ${quotas[i]}`);
          picks.set(i, part.picks);
        }
        this.stats.shardEvaluations += reply.evaluations;
      },
    );
    const allowed = new Uint8Array(this.plan.nCols);
    let count = 0;
    for (const list of picks.values()) for (const j of list) if (allowed[j] === 0) (allowed[j] = 1), count++;
    if (count < this.settings.k) return;
    this.allowed = allowed;
    await this.forShards(
      ids,
      (shardIds) => ({ kind: "restrict", session: this.plan.session, shards: shardIds.map((id) => ({ id, allowed: this.allowedIn(id) })) }),
      (reply) => {
        if (reply.kind !== "loaded") throw new ProtocolError(`expected a restrict reply, got "${reply.kind}"`);
        for (const s of reply.shards) maxBound.set(s.id, s.maxBound);
      },
      maxBound,
    );
  }

  /**
   * Checks one host's round reply against what the coordinator knows: the shards asked, columns
   * open and inside their range, rows inside the kernel, and each claimed gain equal, bit for bit,
   * to the gain of the shipped entries against the coverage the round started from.
   */
  private acceptRound(reply: HostReply, shardIds: number[], round: number, tau: number, into: Map<number, ShardCandidates>): void {
    if (reply.kind !== "round" || reply.round !== round) throw new ProtocolError(`expected the reply to round ${round}`);
    if (reply.shards.length !== shardIds.length) throw new ProtocolError(`round reply holds ${reply.shards.length} shards, ${shardIds.length} were asked`);
    const { nRows } = this.plan;
    for (const c of reply.shards) {
      const range = this.rangeOf.get(c.id);
      if (!range || !shardIds.includes(c.id)) throw new ProtocolError(`round reply for shard ${c.id}, which was not asked`);
      if (c.truncated && c.cols.length !== this.limit) throw new ProtocolError(`shard ${c.id}: truncated with ${c.cols.length} candidates, the limit is ${this.limit}`);
      if (c.cols.length > this.limit) throw new ProtocolError(`shard ${c.id}: ${c.cols.length} candidates, more than the limit ${this.limit}`);
      for (let t = 0; t < c.cols.length; t++) {
        const j = c.cols[t];
        if (j < range.colStart || j >= range.colEnd || (t > 0 && j <= c.cols[t - 1])) throw new ProtocolError(`shard ${c.id}: candidate column ${j} out of its range or order`);
        if (this.selected[j] !== 0 || (this.allowed !== null && this.allowed[j] === 0)) throw new ProtocolError(`shard ${c.id}: candidate column ${j} is not open`);
        if (!(c.gains[t] >= tau)) throw new ProtocolError(`shard ${c.id}: candidate column ${j} below the round's threshold`);
        let g = 0;
        for (let p = c.ptr[t]; p < c.ptr[t + 1]; p++) {
          const r = c.rows[p];
          if (r >= nRows || (p > c.ptr[t] && r <= c.rows[p - 1])) throw new ProtocolError(`shard ${c.id}: column ${j} has row ${r} out of range or order`);
          const d = c.values[p] - this.cur[r];
          if (d > 0) g += d;
        }
        if (g !== c.gains[t]) throw new ProtocolError(`shard ${c.id}: column ${j} claims gain ${c.gains[t]}, its entries give ${g}`);
      }
    }
    for (const c of reply.shards) into.set(c.id, c);
  }

  /** Lazy greedy over the round's candidates while the fresh top reaches tau (and no unshipped candidate could beat it). */
  private processRound(replies: ShardCandidates[], tau: number, round: number): { updateRows: Uint32Array; maxBound: number; truncated: boolean; candidates: number } {
    let total = 0;
    for (const r of replies) total += r.cols.length;
    this.stats.candidatesShipped += total;
    for (const r of replies) this.stats.shardEvaluations += r.evaluations;
    const heap = new CandidateHeap(total);
    const refShard = new Uint32Array(total);
    const refIndex = new Uint32Array(total);
    const boundaries: { gain: number; col: number }[] = [];
    let ref = 0;
    replies.forEach((r, s) => {
      let lastGain = Infinity;
      let lastCol = -1;
      for (let c = 0; c < r.cols.length; c++) {
        heap.pushUnordered(r.gains[c], r.cols[c], ref);
        refShard[ref] = s;
        refIndex[ref++] = c;
        if (r.gains[c] < lastGain || (r.gains[c] === lastGain && r.cols[c] > lastCol)) (lastGain = r.gains[c]), (lastCol = r.cols[c]);
      }
      if (r.truncated) boundaries.push({ gain: lastGain, col: lastCol });
    });
    heap.heapify();
    const stamp = new Int32Array(total).fill(this.picked);
    const touched = new RowList();
    let stoppedEarly = false;
    while (heap.length > 0 && this.picked < this.settings.k) {
      const top = heap.topRef();
      const r = replies[refShard[top]];
      const c = refIndex[top];
      if (stamp[top] !== this.picked) {
        let g = 0;
        for (let p = r.ptr[c]; p < r.ptr[c + 1]; p++) {
          const d = r.values[p] - this.cur[r.rows[p]];
          if (d > 0) g += d;
        }
        this.stats.coordinatorEvaluations++;
        stamp[top] = this.picked;
        heap.lowerTop(g);
        continue;
      }
      const g = heap.topBound();
      const j = heap.topColumn();
      if (g < tau) break;
      if (boundaries.some((b) => !atOrBefore(g, j, b.gain, b.col))) {
        stoppedEarly = true;
        break;
      }
      for (let p = r.ptr[c]; p < r.ptr[c + 1]; p++) {
        const row = r.rows[p];
        if (r.values[p] > this.cur[row]) {
          this.cur[row] = r.values[p];
          if (this.touchedAt[row] !== round) {
            this.touchedAt[row] = round;
            touched.push(row);
          }
        }
      }
      this.curTouched = true;
      this.pick(j, g);
      heap.removeTop();
    }
    const updateRows = touched.data.slice(0, touched.length).sort();
    return { updateRows, maxBound: heap.maxBound(), truncated: stoppedEarly, candidates: total };
  }

  private pick(j: number, gain: number): void {
    this.selected[j] = 1;
    this.order[this.picked] = j;
    this.gains[this.picked] = gain;
    this.picked++;
  }

  /**
   * Sends one request per host for the given shards and hands each reply to accept; loads shards
   * first where they need it, and moves shards off hosts that are lost or fail, until every shard
   * has answered.
   */
  private async forShards(
    ids: number[],
    build: ((shardIds: number[]) => HostRequest) | null,
    accept: (reply: HostReply, shardIds: number[]) => void,
    loadedBounds?: Map<number, number>,
  ): Promise<void> {
    let pending = [...ids];
    while (pending.length > 0) {
      this.hooks.signal?.throwIfAborted();
      const byHost = new Map<string, number[]>();
      for (const id of pending) {
        const host = this.assignment.get(id)!;
        byHost.set(host, [...(byHost.get(host) ?? []), id]);
      }
      const outcomes = await Promise.all(
        [...byHost].map(async ([host, shardIds]) => {
          try {
            const toLoad = shardIds.filter((id) => this.needsLoad.has(id));
            if (toLoad.length > 0) {
              const reply = await this.transport.request(host, this.loadRequest(toLoad), this.hooks.signal);
              const loaded = checkReply(reply, host);
              if (loaded.kind !== "loaded" || loaded.shards.length !== toLoad.length || loaded.shards.some((s) => !toLoad.includes(s.id))) {
                throw new ProtocolError(`host ${host}: a load reply that does not match the request`);
              }
              for (const s of loaded.shards) {
                this.needsLoad.delete(s.id);
                this.stats.shardEvaluations += s.evaluations;
                loadedBounds?.set(s.id, s.maxBound);
              }
              if (!build) accept(loaded, toLoad);
            }
            if (build) accept(checkReply(await this.transport.request(host, build(shardIds), this.hooks.signal), host), shardIds);
            return { host, shardIds, error: null };
          } catch (error) {
            return { host, shardIds, error };
          }
        }),
      );
      pending = [];
      for (const { host, shardIds, error } of outcomes) {
        if (!error) continue;
        if (this.hooks.signal?.aborted) throw new AbortedError("selection cancelled", { cause: error });
        if (error instanceof ShardNotLoadedError) {
          // The host restarted and lost its shards: load them there again.
          this.countFailures(shardIds, error);
          for (const id of shardIds) this.needsLoad.add(id);
        } else if (isHostLostError(error)) {
          await this.hostLost(host, error);
        } else if (isFatal(error)) {
          throw error;
        } else {
          this.hooks.log?.(`host ${host} failed shards ${shardIds.join(", ")}: ${(error as Error).message}`);
          this.countFailures(shardIds, error);
          await this.moveShards(shardIds, host);
        }
        pending.push(...shardIds);
      }
    }
  }

  private countFailures(shardIds: number[], error: unknown): void {
    for (const id of shardIds) {
      const n = (this.failures.get(id) ?? 0) + 1;
      this.failures.set(id, n);
      if (n >= MAX_SHARD_FAILURES) throw new ShardFailedError(`shard ${id} failed ${n} times; last: ${(error as Error).message}`, { cause: error });
    }
  }

  /** A lost host's shards (all of them, answered or not) go to the live hosts with the fewest. */
  private async hostLost(host: string, cause: unknown): Promise<void> {
    this.live = this.live.filter((h) => h !== host);
    this.hooks.log?.(`shard host ${host} lost: ${(cause as Error).message}`);
    const held = [...this.assignment].filter(([, h]) => h === host).map(([id]) => id);
    await this.moveShards(held, host);
  }

  private async moveShards(shardIds: number[], from: string): Promise<void> {
    let candidates = this.live.filter((h) => h !== from);
    if (candidates.length === 0) {
      this.live = (await this.transport.hosts(this.hooks.signal)).filter((h) => h !== from || this.live.includes(h));
      candidates = this.live.filter((h) => h !== from);
      if (candidates.length === 0) candidates = this.live;
    }
    if (candidates.length === 0) throw new NoShardHostsError(`no live shard host is left for shards ${shardIds.join(", ")}`);
    for (const id of shardIds) {
      const load = new Map<string, number>(candidates.map((h) => [h, 0]));
      for (const h of this.assignment.values()) if (load.has(h)) load.set(h, load.get(h)! + 1);
      const to = [...load].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0][0];
      this.assignment.set(id, to);
      this.needsLoad.add(id);
      this.stats.reassignments++;
      this.hooks.onReassign?.({ shard: id, from, to });
      this.hooks.log?.(`shard ${id} moves from ${from} to ${to}`);
    }
  }

  /** A load of the given shards with the coordinator's current state (coverage, picks, allowed columns). */
  private loadRequest(shardIds: number[]): LoadRequest {
    const { objective } = this.settings;
    return {
      kind: "load",
      session: this.plan.session,
      source: this.plan.source,
      scaling: this.plan.scaling,
      nRows: this.plan.nRows,
      objective: objective.kind,
      cap: objective.kind === "flmi" ? objective.cap : null,
      cur: this.curTouched || objective.kind === "flcg" ? this.cur : null,
      shards: shardIds.map((id) => ({ range: this.rangeOf.get(id)!, selected: this.selectedIn(id), allowed: this.allowed ? this.allowedIn(id) : null })),
    };
  }

  private selectedIn(id: number): Uint32Array {
    return columnsWhere(this.selected, this.rangeOf.get(id)!, 1);
  }

  private allowedIn(id: number): Uint32Array {
    return columnsWhere(this.allowed!, this.rangeOf.get(id)!, 1);
  }

  /** f of the picks: sum of coverage (less the start, for FLCG), as CoverageState.value() sums it. */
  private value(): number {
    const { cur, base } = this;
    let sum = 0;
    if (base === null) for (let i = 0; i < cur.length; i++) sum += cur[i];
    else for (let i = 0; i < cur.length; i++) sum += cur[i] - base[i];
    return sum;
  }

  private async release(): Promise<void> {
    const hosts = new Set(this.assignment.values());
    await Promise.all([...hosts].map((h) => this.transport.request(h, { kind: "release", session: this.plan.session }).catch(() => undefined)));
  }
}

function columnsWhere(mask: Uint8Array, range: ShardRange, value: number): Uint32Array {
  let n = 0;
  for (let j = range.colStart; j < range.colEnd; j++) if (mask[j] === value) n++;
  const out = new Uint32Array(n);
  let at = 0;
  for (let j = range.colStart; j < range.colEnd; j++) if (mask[j] === value) out[at++] = j;
  return out;
}

/** An error reply becomes an error: the data's own fault is fatal, a lost shard is reloaded, anything else is the host's. */
function checkReply(reply: HostReply, host: string): HostReply {
  if (reply.kind !== "error") return reply;
  if (reply.name === "ShardNotLoadedError") throw new ShardNotLoadedError(`host ${host}: ${reply.message}`);
  if (reply.name === "InputError") throw new InputError({ file: `shard host ${host}` }, reply.message);
  throw new HostError(host, reply.name, reply.message);
}

/** A failure a host reported (out of memory, a refused session): its shards move. */
class HostError extends Error {
  constructor(
    readonly host: string,
    readonly remoteName: string,
    message: string,
  ) {
    super(`host ${host}: ${remoteName}: ${message}`);
    this.name = "HostError";
  }
}

function isFatal(err: unknown): boolean {
  return err instanceof ShardFailedError || err instanceof ConfigError || err instanceof InputError || err instanceof NoShardHostsError || err instanceof AbortedError;
}

