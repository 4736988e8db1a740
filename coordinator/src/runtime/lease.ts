import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { isKvRevisionError, type KeyValueBucket, LeaseRecord, type Logger, type CoordinatorLease } from "../../../common/src/mod.js";
import { atomicWrite } from "./job-files.js";

/** The cluster bucket key of the coordinator lease. */
export const COORDINATOR_LEASE_KEY = "coordinator.lease";

/** This coordinator may not run: another one holds the lease, or uses the data directory. */
export class LeaseError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LeaseError";
  }
}

export type LeaseOptions = {
  kv: KeyValueBucket;
  /** Who this coordinator is across restarts: the identity of its data directory (dataDirIdentity). */
  holder: string;
  /** The gRPC address it serves (shown to the coordinator it fences off). */
  address: string;
  ttlMs: number;
  /** Wait for the lease to expire instead of refusing to start. */
  standby: boolean;
  log: Logger;
  signal?: AbortSignal;
};

export type LeaseHandle = {
  readonly lease: CoordinatorLease;
  /** Called once if another coordinator took the lease (this one must stop at once). */
  onLost(listener: (by: string) => void): void;
  /** Stops renewing and deletes the lease (a clean stop: a standby takes over without waiting). */
  release(): Promise<void>;
};

/**
 * Fences coordinators on one NATS cluster: a KV lease written with revision checks. Acquiring:
 * create the key, or take it over (by its revision) when it is this data directory's own (a
 * restart) or when its revision has not moved for a whole TTL on this machine's clock (its holder
 * stopped renewing; no clock is compared across machines). A live lease held by another makes this
 * coordinator refuse to start, or wait as a standby. The holder renews at a third of the TTL; a
 * renewal that finds another revision means the lease was taken: onLost.
 */
export async function acquireCoordinatorLease(o: LeaseOptions): Promise<LeaseHandle> {
  const instance = randomBytes(6).toString("hex");
  const mine = (): CoordinatorLease => ({ holder: o.holder, instance, host: hostname(), pid: process.pid, address: o.address, ttlMs: o.ttlMs, renewedAt: Date.now() });
  const encode = () => LeaseRecord.encode(mine());
  let revision: number | null = null;
  let waitingSaid = false;
  while (revision === null) {
    o.signal?.throwIfAborted();
    const entry = await o.kv.entry(COORDINATOR_LEASE_KEY);
    if (!entry) {
      revision = await o.kv.create(COORDINATOR_LEASE_KEY, encode()).catch((err) => (isKvRevisionError(err) ? null : Promise.reject(err)));
      continue;
    }
    let held: CoordinatorLease | null = null;
    try {
      held = LeaseRecord.decode(entry.value, COORDINATOR_LEASE_KEY);
    } catch (err) {
      o.log.warn({ key: COORDINATOR_LEASE_KEY, error: (err as Error).message }, `the coordinator lease record is invalid (${(err as Error).message}): taking it over`);
    }
    // A lease this data directory held in a process on this machine that is gone: a restart, take it now.
    if (!held || (held.holder === o.holder && held.host === hostname() && held.pid !== process.pid && !alive(held.pid))) {
      revision = await o.kv.update(COORDINATOR_LEASE_KEY, encode(), entry.revision).catch((err) => (isKvRevisionError(err) ? null : Promise.reject(err)));
      continue;
    }
    const who = `${held.host} pid ${held.pid} (gRPC ${held.address})`;
    const seen = await watchRevision(o, entry.revision, held.ttlMs);
    if (seen === "gone") continue;
    if (seen === "renewed") {
      if (!o.standby) throw new LeaseError(`another coordinator holds this cluster's lease: ${who}; stop it first, or start this one with --standby to take over when it stops`);
      if (!waitingSaid) o.log.info({ holder: held.holder, host: held.host, pid: held.pid }, `standby: another coordinator holds the lease (${who}); waiting to take over`);
      waitingSaid = true;
      continue;
    }
    o.log.warn({ holder: held.holder, host: held.host, pid: held.pid }, `the coordinator lease of ${who} was not renewed for ${held.ttlMs} ms: taking over`);
    revision = await o.kv.update(COORDINATOR_LEASE_KEY, encode(), entry.revision).catch((err) => (isKvRevisionError(err) ? null : Promise.reject(err)));
  }

  const lost = new Set<(by: string) => void>();
  let stopped = false;
  let current = revision;
  const renew = async () => {
    if (stopped) return;
    try {
      current = await o.kv.update(COORDINATOR_LEASE_KEY, encode(), current);
    } catch (err) {
      if (!isKvRevisionError(err)) {
        o.log.warn({ error: (err as Error).message }, `renewing the coordinator lease failed (${(err as Error).message}); retrying`);
        return;
      }
      stopped = true;
      clearInterval(timer);
      const now = await o.kv.entry(COORDINATOR_LEASE_KEY).catch(() => null);
      let by = "another coordinator";
      try {
        if (now) {
          const l = LeaseRecord.decode(now.value);
          by = `${l.host} pid ${l.pid} (gRPC ${l.address})`;
        }
      } catch {
        // an invalid record: "another coordinator" it is
      }
      for (const l of lost) l(by);
    }
  };
  const timer = setInterval(() => void renew(), Math.max(100, Math.floor(o.ttlMs / 3)));
  timer.unref();
  return {
    lease: mine(),
    onLost: (l) => void lost.add(l),
    release: async () => {
      stopped = true;
      clearInterval(timer);
      const e = await o.kv.entry(COORDINATOR_LEASE_KEY).catch(() => null);
      if (e && e.revision === current) await o.kv.delete(COORDINATOR_LEASE_KEY).catch(() => undefined);
    },
  };
}

/** Watches the lease's revision for one TTL: "renewed" as soon as it moves, "gone" if deleted, else "expired". */
async function watchRevision(o: LeaseOptions, revision: number, ttlMs: number): Promise<"renewed" | "gone" | "expired"> {
  const until = Date.now() + ttlMs;
  const step = Math.max(50, Math.min(1000, Math.floor(ttlMs / 10)));
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, step));
    o.signal?.throwIfAborted();
    const e = await o.kv.entry(COORDINATOR_LEASE_KEY);
    if (!e) return "gone";
    if (e.revision !== revision) return "renewed";
  }
  return "expired";
}

/**
 * The data directory's identity (DATA_DIR/coordinator.id, made once): the lease holder's name, so
 * a coordinator restarted on the same data directory takes its own lease back at once.
 */
export async function dataDirIdentity(dataDir: string): Promise<string> {
  const idFile = join(dataDir, "coordinator.id");
  let holder = (await readFile(idFile, "utf8").catch(() => "")).trim();
  if (!/^[0-9a-f]{16,64}$/.test(holder)) {
    holder = randomBytes(12).toString("hex");
    await atomicWrite(idFile, holder + "\n");
  }
  return holder;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
