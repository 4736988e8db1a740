import { readFileSync } from "node:fs";
import { ConfigError, NATS_FLAGS, NATS_OPTIONS_HELP, natsAccessFrom } from "../../../common/src/mod.js";
import { choiceOption, parseCommand } from "../args.js";
import { bundleCheck } from "../doctor/bundle-check.js";
import { coordinatorChecks, type CoordinatorTarget } from "../doctor/coordinator-checks.js";
import { natsChecks, type PublishedEndpoint } from "../doctor/nats-checks.js";
import { exitCode, formatResult, skip, type CheckResult } from "../doctor/report.js";
import { nodeCheck, providerChecks } from "../doctor/runtime-checks.js";

export const DOCTOR_HELP = `delift doctor [--nats URL [NATS access]] [--coordinator HOST:PORT --token T] [--model DIR] [--device cpu|cuda]

Checks what delift needs on this machine and in the cluster, one line per check, and exits 1 if
any check failed (0 otherwise; WARN and skip do not fail):
  node, onnxruntime cpu/cuda   Node.js version; each execution provider runs a one-node graph
  nats, jetstream, nats version   the servers are reachable with these credentials, JetStream is
                               enabled, the server version (and what 2.9.x lacks)
  replicas                     with --nats-replicas N: the cluster can place N copies
  kv / objects                 delift's buckets and model store exist and can be read
  coordinator, coordinator token   gRPC health, then an authenticated call with the token; without
                               --coordinator, the endpoint the coordinator published in NATS
  model                        a bundle's manifest, hashes, tokenizer and decoder load

  --device cpu|cuda      the provider this machine must have (default cpu: CUDA missing is a WARN)
  --model DIR            a model bundle to check
  --coordinator HOST:PORT / --token T / --tls-ca FILE   (DELIFT_COORDINATOR, DELIFT_TOKEN, DELIFT_TLS_CA)
${NATS_OPTIONS_HELP}`;

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("doctor", argv, {
    ...NATS_FLAGS,
    coordinator: { type: "string" },
    token: { type: "string" },
    "tls-ca": { type: "string" },
    model: { type: "string" },
    device: { type: "string" },
  });
  if (values.help) {
    process.stdout.write(DOCTOR_HELP + "\n");
    return 0;
  }
  const device = choiceOption(values.device, "device", ["cpu", "cuda"] as const) ?? "cpu";
  const pick = (flag: string, env: string) => (typeof values[flag] === "string" ? (values[flag] as string) : process.env[env] || undefined);
  const natsUrl = pick("nats", "DELIFT_NATS_URL");
  const coordinator = pick("coordinator", "DELIFT_COORDINATOR");
  const caFile = pick("tls-ca", "DELIFT_TLS_CA");
  const caPem = caFile ? readCa(caFile) : undefined;

  const results: CheckResult[] = [];
  const print = (batch: CheckResult[]) => {
    results.push(...batch);
    for (const r of batch) process.stdout.write(formatResult(r, 22) + "\n");
  };
  print([nodeCheck()]);
  print(await providerChecks(device === "cuda"));

  let published: PublishedEndpoint | null = null;
  if (natsUrl) {
    const report = await natsChecks(natsAccessFrom(values));
    published = report.endpoint;
    print(report.results);
  } else {
    print([skip("nats", "no --nats URL (or DELIFT_NATS_URL): NATS, JetStream, buckets not checked")]);
  }

  const target: CoordinatorTarget | null = coordinator
    ? { address: coordinator, token: pick("token", "DELIFT_TOKEN"), caPem, source: "--coordinator" }
    : published
      ? { address: published.address, token: published.token || undefined, caPem: published.caPem || undefined, source: "published in NATS, as workers dial it" }
      : null;
  print(target ? await coordinatorChecks(target) : [skip("coordinator", "no --coordinator HOST:PORT (or DELIFT_COORDINATOR) and none published in NATS")]);

  const model = typeof values.model === "string" ? values.model : undefined;
  print([model ? await bundleCheck(model, device) : skip("model", "no --model DIR")]);

  const failed = results.filter((r) => r.status === "fail").length;
  process.stdout.write(failed ? `delift doctor: ${failed} check${failed === 1 ? "" : "s"} failed\n` : "delift doctor: no problems found\n");
  return exitCode(results);
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read --tls-ca ${file}: ${(err as Error).message}`);
  }
}
