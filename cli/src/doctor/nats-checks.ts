import { randomBytes } from "node:crypto";
import { connect, errors, type NatsConnection } from "@nats-io/transport-node";
import { JetStreamApiError, jetstreamManager, StorageType, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { ACTIVE_JOBS_KEY, CLUSTER_BUCKET, COORDINATOR_KEY, JOBS_BUCKET, MODELS_BUCKET, natsConnectionOptions, WORKERS_BUCKET, type NatsAccess } from "../../../common/src/mod.js";
import { fail, note, ok, reason, skip, warn, type CheckResult } from "./report.js";

/** What the coordinator published about itself in the cluster bucket (workers dial it). */
export type PublishedEndpoint = { address: string; token: string; caPem: string; startedAt?: number };

export type NatsReport = { results: CheckResult[]; endpoint: PublishedEndpoint | null };

const MIN_VERSION = [2, 9];

function isPermissionError(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof errors.PermissionViolationError) return true;
  return false;
}

/** Connects once (no reconnect loop: a doctor reports, it does not wait) and runs every NATS check. */
export async function natsChecks(access: NatsAccess): Promise<NatsReport> {
  let nc: NatsConnection;
  try {
    nc = await connect({ ...natsConnectionOptions({ ...access, name: "delift doctor" }), reconnect: false, timeout: 5000 });
  } catch (err) {
    const why = err instanceof errors.AuthorizationError ? "the server refused these credentials" : reason(err);
    return { results: [fail("nats", `cannot connect to ${access.servers.join(",")}: ${why}`)], endpoint: null };
  }
  try {
    const info = nc.info!;
    const peers = (info.connect_urls ?? []).length;
    const who = access.user ? ` as ${access.user}` : access.credsFile ? " with a creds file" : access.token ? " with a token" : "";
    const results: CheckResult[] = [
      ok("nats", `connected to ${info.server_name} at ${nc.getServer()}${who}${access.tlsCaFile ? " over TLS" : ""}; nats-server ${info.version}${info.cluster ? `, cluster "${info.cluster}" (${peers} client URLs advertised)` : ", not clustered"}`),
      versionCheck(info.version),
    ];
    if (!info.jetstream) {
      results.push(fail("jetstream", "JetStream is not enabled on this server: start nats-server with -js (or a jetstream {} block in its config)"));
      return { results, endpoint: null };
    }
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(nc);
      const account = await jsm.getAccountInfo();
      results.push(ok("jetstream", `enabled; this account has ${account.streams} streams, ${account.consumers} consumers, ${(account.storage / 2 ** 20).toFixed(1)} MiB on disk`));
    } catch (err) {
      results.push(fail("jetstream", isPermissionError(err) ? "these credentials may not use the JetStream API ($JS.API.INFO)" : `not usable: ${reason(err)}`));
      return { results, endpoint: null };
    }
    results.push(await replicaCheck(jsm, access.replicas ?? 1));
    for (const bucket of [JOBS_BUCKET, WORKERS_BUCKET, CLUSTER_BUCKET]) results.push(await bucketCheck(jsm, `KV_${bucket}`, `kv ${bucket}`));
    results.push(await bucketCheck(jsm, `OBJ_${MODELS_BUCKET}`, `objects ${MODELS_BUCKET}`));
    const read = await readChecks(nc);
    return { results: [...results, ...read.results], endpoint: read.endpoint };
  } finally {
    await nc.close().catch(() => undefined);
  }
}

function versionCheck(version: string): CheckResult {
  const [major, minor] = version.split(".").map(Number);
  if (major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1])) return fail("nats version", `nats-server ${version}: delift needs ${MIN_VERSION.join(".")} or newer`);
  if (major === 2 && minor === 9) {
    return note("nats version", "2.9.x works; it lacks what 2.10 added (per-message TTLs, stream metadata, compression, consumer filter_subjects, priority groups) and ignores term(reason), so delift terminates bad messages without a reason");
  }
  return ok("nats version", `${version}`);
}

/**
 * --nats-replicas N > 1: creates (and deletes) a small memory stream with N replicas, which is
 * how the servers say whether they can place N copies. Needs the right to create streams.
 */
async function replicaCheck(jsm: JetStreamManager, replicas: number): Promise<CheckResult> {
  if (replicas <= 1) return skip("replicas", "--nats-replicas 1 (give --nats-replicas N to check that the cluster can hold N copies)");
  const name = `DELIFT_DOCTOR_${randomBytes(4).toString("hex")}`;
  try {
    await jsm.streams.add({ name, subjects: [`delift.doctor.${name}`], storage: StorageType.Memory, num_replicas: replicas, max_msgs: 1 });
    await jsm.streams.delete(name).catch(() => undefined);
    return ok("replicas", `the cluster placed a stream with ${replicas} replicas`);
  } catch (err) {
    if (isPermissionError(err)) return skip("replicas", `these credentials may not create streams (the coordinator's can): ${replicas} replicas not checked`);
    if (err instanceof JetStreamApiError) return fail("replicas", `the servers refuse ${replicas} replicas: ${err.message} (--nats-replicas must not exceed the JetStream servers in the cluster)`);
    return fail("replicas", `checking ${replicas} replicas: ${reason(err)}`);
  }
}

async function bucketCheck(jsm: JetStreamManager, stream: string, check: string): Promise<CheckResult> {
  try {
    const info = await jsm.streams.info(stream);
    return ok(check, `${info.state.messages} entries, ${(info.state.bytes / 2 ** 20).toFixed(1)} MiB, ${info.config.num_replicas} replica${info.config.num_replicas === 1 ? "" : "s"}`);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.status === 404) return warn(check, "not created yet (the coordinator creates it when it starts)");
    if (isPermissionError(err)) return fail(check, `these credentials may not read ${stream}'s stream info`);
    return fail(check, reason(err));
  }
}

/** Reads what workers read: the active jobs and the coordinator's endpoint. */
async function readChecks(nc: NatsConnection): Promise<NatsReport> {
  const results: CheckResult[] = [];
  let endpoint: PublishedEndpoint | null = null;
  try {
    const jobs = await new Kvm(nc).open(JOBS_BUCKET);
    const active = await jobs.get(ACTIVE_JOBS_KEY);
    const ids = active?.operation === "PUT" ? (JSON.parse(active.string()) as unknown) : [];
    results.push(ok("kv read", `active jobs: ${Array.isArray(ids) && ids.length ? ids.join(", ") : "none"}`));
    const cluster = await new Kvm(nc).open(CLUSTER_BUCKET);
    const entry = await cluster.get(COORDINATOR_KEY);
    if (entry?.operation === "PUT") {
      endpoint = JSON.parse(entry.string()) as PublishedEndpoint;
      const age = endpoint.startedAt ? `, refreshed ${Math.round((Date.now() - endpoint.startedAt) / 1000)} s ago` : "";
      results.push(ok("coordinator endpoint", `published: ${endpoint.address}${endpoint.caPem ? " (TLS)" : ""}${age}`));
    } else {
      results.push(warn("coordinator endpoint", "none published: no coordinator has started on this NATS"));
    }
  } catch (err) {
    results.push(fail("kv read", isPermissionError(err) ? "these credentials may not read the jobs or cluster bucket" : reason(err)));
  }
  try {
    const store = await new Objm(nc).open(MODELS_BUCKET);
    const status = await store.status();
    results.push(ok("objects read", `model store: ${(status.size / 2 ** 20).toFixed(1)} MiB`));
  } catch (err) {
    results.push(isPermissionError(err) ? fail("objects read", "these credentials may not read the model store") : warn("objects read", reason(err)));
  }
  return { results, endpoint };
}
