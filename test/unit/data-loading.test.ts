import { test } from "uvu";
import * as assert from "uvu/assert";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { parquetWriteFile } from "hyparquet-writer";
import { InputError, loadDataset } from "../../common/src/mod.js";
import { tempDir } from "../helpers/paths.js";

function jsonl(dir: string, name: string, lines: (string | object)[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n");
  return path;
}

const ok = (id: string, extra: object = {}) => ({ id, instruction: `Q ${id}`, input: "", output: `A ${id}`, ...extra });

test("x is instruction plus newline plus input when input is non-empty", async () => {
  const t = tempDir();
  try {
    const file = jsonl(t.path, "d.jsonl", [ok("a"), ok("b", { input: "ctx" }), ok("c", { input: null })]);
    const d = await loadDataset(file);
    assert.equal(d.samples.map((s) => s.x), ["Q a", "Q b\nctx", "Q c"]);
    assert.equal(d.samples.map((s) => s.y), ["A a", "A b", "A c"]);
    assert.equal(d.samples.map((s) => s.index), [0, 1, 2]);
  } finally {
    t.cleanup();
  }
});

test("errors name file, line and field, and list every bad record", async () => {
  const t = tempDir();
  try {
    const file = jsonl(t.path, "bad.jsonl", [ok("a"), "{not json", { id: "c", instruction: 5, output: "x" }, ok("d", { output: "  " })]);
    const err = await loadDataset(file).catch((e) => e);
    assert.instance(err, InputError);
    assert.match(err.message, `${file}:2: invalid JSON`);
    assert.match(err.message, `${file}:3 field "instruction": expected a string, got a number`);
    assert.match(err.message, `${file}:4 field "output": is empty`);
    assert.match(err.message, "3 invalid record(s)");
  } finally {
    t.cleanup();
  }
});

test("--skip-invalid skips and reports what it skipped", async () => {
  const t = tempDir();
  try {
    const file = jsonl(t.path, "bad.jsonl", [ok("a"), { id: "b", instruction: "", output: "x" }, ok("c")]);
    const d = await loadDataset(file, { skipInvalid: true });
    assert.equal(d.samples.map((s) => s.id), ["a", "c"]);
    assert.equal(d.samples.map((s) => s.index), [0, 1]);
    assert.equal(d.skipped.length, 1);
    assert.equal(d.skipped[0].line, 2);
    assert.equal(d.skipped[0].field, "instruction");
  } finally {
    t.cleanup();
  }
});

test("duplicate ids are an error even with --skip-invalid", async () => {
  const t = tempDir();
  try {
    const file = jsonl(t.path, "dup.jsonl", [ok("a"), ok("b"), ok("a")]);
    const err = await loadDataset(file, { skipInvalid: true }).catch((e) => e);
    assert.instance(err, InputError);
    assert.match(err.message, 'dup.jsonl:3 field "id": duplicate id "a" (first seen on line 1)');
  } finally {
    t.cleanup();
  }
});

test("configurable field names, gzip, blank lines keep true line numbers", async () => {
  const t = tempDir();
  try {
    const path = join(t.path, "d.jsonl.gz");
    const rows = [{ key: 7, prompt: "p1", resp: "r1" }, { key: 8, prompt: "p2", ctx: "c2", resp: "r2" }];
    writeFileSync(path, gzipSync(`${JSON.stringify(rows[0])}\n\n${JSON.stringify(rows[1])}\n`));
    const d = await loadDataset(path, { fields: { id: "key", instruction: "prompt", input: "ctx", output: "resp" } });
    assert.equal(d.samples.map((s) => [s.id, s.x, s.y, s.line]), [["7", "p1", "r1", 1], ["8", "p2\nc2", "r2", 3]]);
  } finally {
    t.cleanup();
  }
});

test("missing ids default to the line number; empty data is an error", async () => {
  const t = tempDir();
  try {
    const d = await loadDataset(jsonl(t.path, "noid.jsonl", [{ instruction: "q", output: "a" }]));
    assert.equal(d.samples[0].id, "1");
    const empty = join(t.path, "empty.jsonl");
    writeFileSync(empty, "\n");
    const err = await loadDataset(empty).catch((e) => e);
    assert.instance(err, InputError);
    assert.match(err.message, "the data set is empty");
  } finally {
    t.cleanup();
  }
});

test("Parquet with the same validation, rows numbered from 1", async () => {
  const t = tempDir();
  try {
    const path = join(t.path, "d.parquet");
    parquetWriteFile({
      filename: path,
      columnData: [
        { name: "id", data: ["a", "b", "c"], type: "STRING" },
        { name: "instruction", data: ["q1", "q2", "q3"], type: "STRING" },
        { name: "input", data: ["", "in", ""], type: "STRING" },
        { name: "output", data: ["o1", "", "o3"], type: "STRING" },
      ],
    });
    const err = await loadDataset(path).catch((e) => e);
    assert.instance(err, InputError);
    assert.match(err.message, `${path}:2 field "output": is empty`);
    const d = await loadDataset(path, { skipInvalid: true });
    assert.equal(d.samples.map((s) => s.x), ["q1", "q3"]);
  } finally {
    t.cleanup();
  }
});

test("unknown extension and missing file are clear errors", async () => {
  const e1 = await loadDataset("/nonexistent/data.csv").catch((e) => e);
  assert.instance(e1, InputError);
  assert.match(e1.message, 'unknown data format ".csv"');
  const e2 = await loadDataset("/nonexistent/data.jsonl").catch((e) => e);
  assert.instance(e2, InputError);
  assert.match(e2.message, "cannot open");
});

test.run();
