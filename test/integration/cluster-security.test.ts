import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { selfSignedCertificate } from "../helpers/certificates.js";
import { CliProcess, TestCluster } from "../helpers/cluster.js";
import { natsOperatorSetup } from "../helpers/nats-jwt.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const dir = tempDir("delift-security-");
const DATA = join(dir.path, "gsm8k-6.jsonl");
writeFileSync(DATA, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, 6).join("\n") + "\n");


test.after(() => dir.cleanup());

test("NATS user/password over TLS, gRPC over TLS with a bearer token: a job completes; wrong NATS credentials are refused", async () => {
  // Certificates made in-process (selfsigned): the test needs no openssl on the PATH.
  const nats = await selfSignedCertificate(dir.path, "nats");
  const grpc = await selfSignedCertificate(dir.path, "grpc");
  const natsArgs = ["--nats-user", "delift", "--nats-password", "pw-1", "--nats-tls-ca", nats.cert];
  const cluster = await TestCluster.start({
    workers: 2,
    natsConfig: `authorization { users = [ { user: "delift", password: "pw-1" } ] }\ntls { cert_file: "${nats.cert}", key_file: "${nats.key}" }`,
    natsArgs,
    coordinatorArgs: ["--grpc-tls-cert", grpc.cert, "--grpc-tls-key", grpc.key],
    grpcCa: readFileSync(grpc.cert),
  });
  try {
    const job = await cluster.submit({ kind: "kernel", data: DATA, model: TINY_MODEL, scoring: { tile: { columns: 3, rows: 6 } } });
    const s = await cluster.waitForJob(job, (x) => x.state === "done", 90_000);
    assert.is(s.tilesDone, s.tilesTotal);

    const intruder = CliProcess.spawn("intruder", ["worker", "--nats", cluster.nats.url, "--nats-user", "delift", "--nats-password", "wrong", "--nats-tls-ca", nats.cert, "--id", "intruder"]);
    const code = await intruder.wait();
    assert.is.not(code, 0);
    assert.match(intruder.log, /authorization|authentication|Authorization Violation/i);
  } finally {
    await cluster.stop();
  }
});

test("NATS token auth, every setting from DELIFT_NATS_* variables: a worker with no flags computes the job; a wrong token is refused", async () => {
  const cluster = await TestCluster.start({ natsConfig: `authorization { token: "tok-1" }`, natsArgs: ["--nats-token", "tok-1"] });
  try {
    const envWorker = CliProcess.spawn("env-worker", ["worker", "--id", "env-worker", "--threads", "1", "--verbose", "--cache-dir", join(dir.path, "cache-env")], {
      DELIFT_NATS_URL: cluster.nats.url,
      DELIFT_NATS_TOKEN: "tok-1",
      // The coordinator's bearer token: workers fetch each job's tile key over gRPC with it.
      DELIFT_TOKEN: cluster.token,
    });
    cluster.workers.set("env-worker", envWorker);
    await envWorker.waitFor(/worker ready/);
    const job = await cluster.submit({ kind: "kernel", data: DATA, model: TINY_MODEL, scoring: { tile: { columns: 3, rows: 6 } } });
    const s = await cluster.waitForJob(job, (x) => x.state === "done", 90_000);
    assert.equal(s.workers.map((w) => w.workerId), ["env-worker"], "the only worker, configured from the environment alone, did the work");

    const intruder = CliProcess.spawn("intruder", ["worker", "--id", "intruder"], { DELIFT_NATS_URL: cluster.nats.url, DELIFT_NATS_TOKEN: "wrong" });
    assert.is.not(await intruder.wait(), 0);
    assert.match(intruder.log, /authorization|authentication|Authorization Violation/i);
    const anonymous = CliProcess.spawn("anonymous", ["worker", "--id", "anonymous", "--nats", cluster.nats.url], { DELIFT_NATS_URL: "", DELIFT_NATS_TOKEN: "" });
    assert.is.not(await anonymous.wait(), 0);
    assert.match(anonymous.log, /authorization|authentication|Authorization Violation/i);
  } finally {
    await cluster.stop();
  }
});

test("NATS creds file (operator JWTs, --nats-creds and DELIFT_NATS_CREDS): a job completes; a user of an unknown account is refused", async () => {
  const auth = natsOperatorSetup(dir.path);
  const cluster = await TestCluster.start({ workers: 1, natsConfig: auth.serverConfig, natsArgs: ["--nats-creds", auth.credsFile] });
  try {
    const envWorker = CliProcess.spawn("creds-env-worker", ["worker", "--id", "creds-env-worker", "--threads", "1", "--verbose", "--cache-dir", join(dir.path, "cache-creds")], {
      DELIFT_NATS_URL: cluster.nats.url,
      DELIFT_NATS_CREDS: auth.credsFile,
      DELIFT_TOKEN: cluster.token,
    });
    cluster.workers.set("creds-env-worker", envWorker);
    await envWorker.waitFor(/worker ready/);
    const job = await cluster.submit({ kind: "kernel", data: DATA, model: TINY_MODEL, scoring: { tile: { columns: 1, rows: 6 } } });
    const s = await cluster.waitForJob(job, (x) => x.state === "done", 90_000);
    assert.is(s.tilesDone, s.tilesTotal);
    const stranger = CliProcess.spawn("stranger", ["worker", "--id", "stranger", "--nats", cluster.nats.url, "--nats-creds", auth.strangerCredsFile]);
    assert.is.not(await stranger.wait(), 0);
    assert.match(stranger.log, /authorization|authentication|Authorization Violation/i);
  } finally {
    await cluster.stop();
  }
});

test.run();
