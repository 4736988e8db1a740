import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_FIELDS, DEFAULT_TEMPLATES, InputError } from "../../common/src/mod.js";
import { DEFAULT_BATCH, DEFAULT_QUEUE, parseJobSpec } from "../../coordinator/src/jobs/job-spec.js";
import { DEFAULT_TILE_SHAPE } from "../../coordinator/src/plan/plan-tiles.js";

const SRC = "job.json";
const S = (o: Record<string, unknown> = {}) => ({ budget: "0.3", ...o });
const minimal = () => ({ data: "/data/train.jsonl", model: "/models/m", selection: S() });

/** Parses and expects an InputError on `field`, its message matching `pattern`. */
function rejects(value: unknown, field: string, pattern?: RegExp): void {
  let err: unknown = null;
  try {
    parseJobSpec(value, SRC);
  } catch (e) {
    err = e;
  }
  assert.ok(err !== null, `expected an InputError on ${field}, parsed fine`);
  assert.instance(err, InputError, `${field}: ${(err as Error)?.message}`);
  assert.is((err as InputError).location.field, field, (err as Error).message);
  assert.is((err as InputError).location.file, SRC);
  assert.match((err as Error).message, `field "${field}"`);
  if (pattern) assert.match((err as Error).message, pattern);
}

test("a minimal spec gets every default", () => {
  const spec = parseJobSpec(minimal(), SRC);
  assert.equal(spec, {
    kind: "select",
    data: "/data/train.jsonl",
    model: "/models/m",
    target: null,
    targetIds: null,
    existing: null,
    existingIds: null,
    kernel: null,
    embeddings: null,
    selection: {
      stage: "instruction",
      budget: "0.3",
      optimizer: "stochastic",
      epsilon: 0.01,
      seed: 0,
      scaling: "min-max",
      eta: 1,
      nu: 1,
      kernelType: "utility",
      compareLazy: "auto",
      shards: null,
      memory: null,
      algorithm: "bands",
    },
    scoring: {
      fields: DEFAULT_FIELDS,
      templates: DEFAULT_TEMPLATES,
      maxLength: null,
      batch: { ...DEFAULT_BATCH, runCostTokens: 64 },
      tile: DEFAULT_TILE_SHAPE,
      skipInvalid: false,
      candidates: null,
      embedTileTokens: 32768,
    },
    queue: DEFAULT_QUEUE,
    saveKernel: false,
  });
});

test("given values are kept; a numeric budget becomes a string; partial field maps merge with the defaults", () => {
  const spec = parseJobSpec(
    {
      ...minimal(),
      kind: "select",
      target: "/data/val.jsonl",
      selection: S({ stage: "task", budget: 100, optimizer: "lazy", epsilon: 0.2, seed: 7, scaling: "clip-at-zero", eta: 2 }),
      scoring: { fields: { output: "response" }, maxLength: 512, tile: { columns: 4, rows: 64 }, skipInvalid: true },
      queue: { ackWaitSeconds: 5, maxDeliver: 2, maxQueued: 10 },
      saveKernel: true,
    },
    SRC,
  );
  assert.is(spec.target, "/data/val.jsonl");
  assert.is(spec.selection.stage, "task");
  assert.is(spec.selection.budget, "100");
  assert.is(spec.selection.optimizer, "lazy");
  assert.is(spec.selection.epsilon, 0.2);
  assert.is(spec.selection.seed, 7);
  assert.is(spec.selection.eta, 2);
  assert.is(spec.scoring.fields.output, "response");
  assert.is(spec.scoring.fields.instruction, DEFAULT_FIELDS.instruction);
  assert.is(spec.scoring.maxLength, 512);
  assert.equal(spec.scoring.tile, { columns: 4, rows: 64 });
  assert.is(spec.scoring.skipInvalid, true);
  assert.equal(spec.queue, { ackWaitSeconds: 5, maxDeliver: 2, maxQueued: 10 });
  assert.is(spec.saveKernel, true);
});

test("a select job needs a budget; a kernel job does not", () => {
  rejects({ data: "/d", model: "/m" }, "selection.budget", /required/);
  assert.is(parseJobSpec({ data: "/d", model: "/m", kind: "kernel" }, SRC).selection.budget, "1");
});

test("relative or missing paths are rejected naming the field", () => {
  rejects({ ...minimal(), data: "train.jsonl" }, "data", /absolute path/);
  rejects({ ...minimal(), data: "./data/train.jsonl" }, "data", /absolute path/);
  rejects({ ...minimal(), model: "models/m" }, "model", /absolute path/);
  rejects({ model: "/models/m", selection: S() }, "data", /required/);
  rejects({ ...minimal(), data: "" }, "data", /non-empty string/);
  rejects({ ...minimal(), data: 5 }, "data", /non-empty string/);
  rejects({ ...minimal(), selection: S({ stage: "task" }), target: "val.jsonl" }, "target", /absolute path/);
});

test("an unknown top-level key is rejected naming it", () => {
  rejects({ ...minimal(), epsilon: 0.1 }, "epsilon", /unknown setting/);
  rejects({ ...minimal(), Data: "/x" }, "Data", /unknown setting/);
});

test("the root and its sections must be objects", () => {
  rejects(null, "(root)", /object/);
  rejects([minimal()], "(root)", /object/);
  rejects({ ...minimal(), selection: "fast" }, "selection", /object/);
  rejects({ ...minimal(), queue: [1] }, "queue", /object/);
});

test("stage rules: task needs a target, a target needs stage task, continual needs existing", () => {
  rejects({ ...minimal(), selection: S({ stage: "task" }) }, "target", /needs a target set/);
  rejects({ ...minimal(), target: "/data/val.jsonl" }, "target", /stage task/);
  rejects({ ...minimal(), targetIds: "/data/ids.txt", selection: S({ stage: "instruction" }) }, "target", /stage task/);
  rejects({ ...minimal(), selection: S({ stage: "task" }), target: "/a", targetIds: "/b" }, "target", /not both/);
  rejects({ ...minimal(), selection: S({ stage: "continual" }) }, "existing", /needs the data already used/);
  rejects({ ...minimal(), existing: "/data/old.jsonl", selection: S({ stage: "task" }), target: "/v" }, "existing", /stage continual/);
  rejects({ ...minimal(), kind: "kernel", selection: S({ stage: "continual" }), existing: "/e" }, "selection.stage");
  // The accepted counterparts.
  assert.is(parseJobSpec({ ...minimal(), selection: S({ stage: "task" }), targetIds: "/data/ids.txt" }, SRC).targetIds, "/data/ids.txt");
  assert.is(parseJobSpec({ ...minimal(), selection: S({ stage: "continual" }), existing: "/data/old.jsonl" }, SRC).existing, "/data/old.jsonl");
});

test("numbers out of range or of the wrong kind are rejected naming the field", () => {
  rejects({ ...minimal(), selection: S({ epsilon: 2 }) }, "selection.epsilon", /from/);
  rejects({ ...minimal(), selection: S({ epsilon: 0 }) }, "selection.epsilon");
  rejects({ ...minimal(), selection: S({ epsilon: "0.1" }) }, "selection.epsilon");
  rejects({ ...minimal(), selection: S({ seed: 1.5 }) }, "selection.seed", /integer/);
  rejects({ ...minimal(), selection: S({ seed: -1 }) }, "selection.seed");
  rejects({ ...minimal(), queue: { maxDeliver: 0 } }, "queue.maxDeliver", /integer from 1/);
  rejects({ ...minimal(), queue: { maxDeliver: 2.5 } }, "queue.maxDeliver");
  rejects({ ...minimal(), queue: { ackWaitSeconds: 0 } }, "queue.ackWaitSeconds");
  rejects({ ...minimal(), queue: { maxQueued: 0 } }, "queue.maxQueued");
  rejects({ ...minimal(), scoring: { tile: { columns: 0 } } }, "scoring.tile.columns");
  rejects({ ...minimal(), scoring: { batch: { maxBatch: 1e9 } } }, "scoring.batch.maxBatch");
  rejects({ ...minimal(), scoring: { maxLength: 4 } }, "scoring.maxLength");
  // JSON cannot carry NaN or Infinity, but a programmatic caller can.
  rejects({ ...minimal(), selection: S({ eta: Infinity }) }, "selection.eta");
  rejects({ ...minimal(), selection: S({ nu: NaN }) }, "selection.nu");
});

test("choices and maps are checked", () => {
  rejects({ ...minimal(), kind: "train" }, "kind", /select, kernel/);
  rejects({ ...minimal(), selection: S({ optimizer: "greedy" }) }, "selection.optimizer", /stochastic, lazy/);
  rejects({ ...minimal(), selection: S({ stage: "pretrain" }) }, "selection.stage");
  rejects({ ...minimal(), scoring: { fields: { answer: "a" } } }, "scoring.fields.answer");
  rejects({ ...minimal(), scoring: { fields: { output: "" } } }, "scoring.fields.output");
  rejects({ ...minimal(), scoring: { templates: { p0: "x" } } }, "scoring.templates.p0");
  rejects({ ...minimal(), scoring: { templates: { baseline: 3 } } }, "scoring.templates.baseline");
});

test("inherited Object.prototype names are not field-map keys", () => {
  rejects({ ...minimal(), scoring: { fields: { constructor: "x" } } }, "scoring.fields.constructor");
  rejects({ ...minimal(), scoring: { fields: { toString: "x" } } }, "scoring.fields.toString");
});

test.run();
