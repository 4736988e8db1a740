import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CliProcess, TestCluster } from "../helpers/cluster.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const dir = tempDir("delift-security-");
const DATA = join(dir.path, "gsm8k-6.jsonl");
writeFileSync(DATA, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, 6).join("\n") + "\n");

/** A throwaway self-signed certificate for localhost / 127.0.0.1. */
function certificate(name: string): { cert: string; key: string } {
  const cert = join(dir.path, `${name}.crt`);
  const key = join(dir.path, `${name}.key`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], { stdio: "ignore" });
  return { cert, key };
}

test.after(() => dir.cleanup());

test("NATS user/password over TLS, gRPC over TLS with a bearer token: a job completes; wrong NATS credentials are refused", async () => {
  const nats = certificate("nats");
  const grpc = certificate("grpc");
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

test.run();
