import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { copyFileSync, cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CliProcess } from "../helpers/cluster.js";
import { NatsCluster } from "../helpers/nats-cluster.js";
import { freePort } from "../helpers/nats-server.js";
import { ROOT, TINY_MODEL, tempDir } from "../helpers/paths.js";

const Doctor = suite("delift doctor against a real nats-server and coordinator");
const scratch = tempDir("delift-ops-doctor-");
const TOKEN = "doctor-token";
const PASSWORDS = { DELIFT_NATS_COORDINATOR_PASSWORD: "doc-coord-pw", DELIFT_NATS_WORKER_PASSWORD: "doc-worker-pw" };
const env: { nats: NatsCluster | null; url: string; coordinator: CliProcess | null; grpcPort: number } = { nats: null, url: "", coordinator: null, grpcPort: 0 };

/** The deploy files' users and permissions (included from beside the config): the doctor is run as a worker would be. */
const AUTH = `include "permissions.json"
authorization { users: [
  { user: "delift-coordinator", password: $DELIFT_NATS_COORDINATOR_PASSWORD, permissions: $DELIFT_COORDINATOR_PERMISSIONS }
  { user: "delift-worker", password: $DELIFT_NATS_WORKER_PASSWORD, permissions: $DELIFT_WORKER_PERMISSIONS }
] }`;

type Run = { code: number | null; out: string; lines: Map<string, string> };

/** `delift doctor ARGS`: its exit code and its lines by check name ("ok    nats    connected ..."). */
function doctor(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(ROOT, "bin", "delift.js"), "doctor", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DELIFT_NATS_URL: "", DELIFT_COORDINATOR: "", DELIFT_TOKEN: "" } });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.once("exit", (code) => {
      const lines = new Map<string, string>();
      for (const line of out.split("\n")) {
        const m = /^(ok|WARN|FAIL|skip|note)\s+(\S+(?: \S+)?)\s{2,}(.*)$/.exec(line);
        if (m) lines.set(m[2], `${m[1].trim()} ${m[3]}`);
      }
      resolve({ code, out, lines });
    });
  });
}

const worker = () => ["--nats", env.url, "--nats-user", "delift-worker", "--nats-password", PASSWORDS.DELIFT_NATS_WORKER_PASSWORD];

Doctor.before(async () => {
  const dir = tempDir("delift-ops-doctor-nats-");
  copyFileSync(join(ROOT, "deploy", "nats", "permissions.json"), join(dir.path, "permissions.json"));
  const port = await freePort();
  const config = `listen: 127.0.0.1:${port}\njetstream { store_dir: "${join(dir.path, "js")}" }\n${AUTH}`;
  env.nats = await NatsCluster.fromConfigs([{ name: "single", clientPort: port, config }], dir, PASSWORDS, { user: "delift-coordinator", pass: PASSWORDS.DELIFT_NATS_COORDINATOR_PASSWORD });
  env.url = env.nats.urls;
  env.grpcPort = await freePort();
  env.coordinator = CliProcess.spawn("coordinator", ["coordinator", "--grpc", `127.0.0.1:${env.grpcPort}`, "--data-dir", join(scratch.path, "data"), "--nats", env.url, "--nats-user", "delift-coordinator", "--nats-password", PASSWORDS.DELIFT_NATS_COORDINATOR_PASSWORD], { DELIFT_TOKEN: TOKEN });
  await env.coordinator.waitFor(/coordinator ready/, 30_000);
});

Doctor.after(async () => {
  env.coordinator?.kill("SIGKILL");
  await env.coordinator?.wait();
  await env.nats?.cleanup();
  scratch.cleanup();
});

Doctor("a healthy setup, seen with a worker's credentials: every check ok, exit 0", async () => {
  const r = await doctor([...worker(), "--coordinator", `127.0.0.1:${env.grpcPort}`, "--token", TOKEN, "--model", TINY_MODEL]);
  assert.is(r.code, 0, r.out);
  for (const check of ["node", "onnxruntime cpu", "nats", "jetstream", "kv delift_jobs", "kv delift_workers", "kv delift_cluster", "objects delift_models", "kv read", "objects read", "coordinator endpoint", "coordinator", "coordinator token", "model"]) {
    assert.match(r.lines.get(check) ?? "missing", /^ok /, `${check}: ${r.lines.get(check)}\n${r.out}`);
  }
  assert.match(r.lines.get("nats")!, /as delift-worker; nats-server \d+\.\d+\.\d+/);
  assert.match(r.lines.get("nats version")!, /^(ok|note) /);
  if (r.lines.get("nats version")!.startsWith("note")) assert.match(r.lines.get("nats version")!, /TTL.*term\(reason\)/);
  assert.match(r.lines.get("coordinator endpoint")!, new RegExp(`127\\.0\\.0\\.1:${env.grpcPort}`));
  assert.match(r.lines.get("model")!, /delift-tiny/);
  // A worker may not create streams: the replica check says so instead of failing.
  const r3 = await doctor([...worker(), "--nats-replicas", "3"]);
  assert.match(r3.lines.get("replicas") ?? "", /^skip .*may not create streams/, r3.out);
});

Doctor("wrong token, wrong NATS password, unreachable coordinator: FAIL lines that say which, exit 1", async () => {
  const [token, password, nowhere] = await Promise.all([
    doctor(["--coordinator", `127.0.0.1:${env.grpcPort}`, "--token", "not-the-token"]),
    doctor(["--nats", env.url, "--nats-user", "delift-worker", "--nats-password", "wrong"]),
    doctor(["--coordinator", `127.0.0.1:${await freePort()}`, "--token", TOKEN]),
  ]);
  assert.is(token.code, 1, token.out);
  assert.match(token.lines.get("coordinator")!, /^ok .*health SERVING/);
  assert.match(token.lines.get("coordinator token")!, /^FAIL refused by the coordinator/);
  assert.is(password.code, 1, password.out);
  assert.match(password.lines.get("nats")!, /^FAIL cannot connect .*refused these credentials/);
  assert.is(nowhere.code, 1, nowhere.out);
  assert.match(nowhere.lines.get("coordinator")!, /^FAIL .*not reachable over gRPC/);
  for (const r of [token, password, nowhere]) assert.not.match(r.out, /\n\s+at /, "a stack trace");
});

Doctor("a server without JetStream, and replicas it cannot hold: FAIL with what to do", async () => {
  const port = await freePort();
  const plain = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
  try {
    await new Promise<void>((resolve, reject) => {
      let log = "";
      plain.stderr!.on("data", (d: Buffer) => (log += d.toString()) && /Server is ready/.test(log) && resolve());
      plain.once("exit", (code) => reject(new Error(`nats-server exited ${code}: ${log}`)));
    });
    const [noJs, replicas] = await Promise.all([
      doctor(["--nats", `nats://127.0.0.1:${port}`]),
      doctor(["--nats", env.url, "--nats-user", "delift-coordinator", "--nats-password", PASSWORDS.DELIFT_NATS_COORDINATOR_PASSWORD, "--nats-replicas", "3"]),
    ]);
    assert.is(noJs.code, 1, noJs.out);
    assert.match(noJs.lines.get("nats")!, /^ok /);
    assert.match(noJs.lines.get("jetstream")!, /^FAIL JetStream is not enabled .*-js/);
    assert.is(replicas.code, 1, replicas.out);
    assert.match(replicas.lines.get("replicas")!, /^FAIL the servers refuse 3 replicas: replicas > 1 not supported in non-clustered mode/);
  } finally {
    plain.kill("SIGKILL");
  }
});

Doctor("a corrupt model bundle and a missing CUDA provider (--device cuda): FAIL naming the file or the install command", async () => {
  const bundle = join(scratch.path, "corrupt-bundle");
  cpSync(TINY_MODEL, bundle, { recursive: true });
  const onnx = readFileSync(join(bundle, "model.onnx"));
  onnx[onnx.length - 100] ^= 0xff;
  writeFileSync(join(bundle, "model.onnx"), onnx);
  const [corrupt, cuda] = await Promise.all([doctor(["--model", bundle]), doctor(["--device", "cuda"])]);
  assert.is(corrupt.code, 1, corrupt.out);
  assert.match(corrupt.lines.get("model")!, /^FAIL .*model\.onnx has sha256 [0-9a-f]{64}, the manifest says/);
  const line = cuda.lines.get("onnxruntime cuda")!;
  if (line.startsWith("ok")) {
    assert.is(cuda.code, 0, "CUDA works on this machine and the doctor still failed");
  } else {
    assert.is(cuda.code, 1, cuda.out);
    assert.match(line, /^FAIL not usable here .*ONNXRUNTIME_NODE_INSTALL=cuda12/);
  }
  assert.not.match(cuda.out, /provider_bridge_ort|\[E:onnxruntime/, "onnxruntime's own error log leaked");
});

Doctor.run();
