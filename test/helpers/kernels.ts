import * as assert from "uvu/assert";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readKernel } from "../../common/src/kernel/kernel-files.js";
import { parseJobSpec } from "../../coordinator/src/jobs/job-spec.js";
import { runEmbeddedJob } from "../../cli/src/embedded/run-embedded-job.js";
import { FIXTURES, TINY_MODEL, tempDir } from "./paths.js";

/** The engine's largest difference from the Python reference is about 1e-7 (README). */
export const REFERENCE_TOLERANCE = 1e-6;

type Reference = { ids: string[]; d0: number[]; d1: number[][]; uf: number[][] };
let reference: Reference | null = null;

/** The first n records of test/fixtures/gsm8k-32.jsonl written to `file`. */
export function writeSamples(file: string, n: number): string {
  writeFileSync(file, readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").slice(0, n).join("\n") + "\n");
  return file;
}

/** kernel.bin of an embedded-default run (same engine as a cluster worker) of a kernel job. */
export async function embeddedKernel(data: string, scoring: object = {}): Promise<Buffer> {
  const dir = tempDir("delift-embedded-ref-");
  try {
    const spec = parseJobSpec({ kind: "kernel", data, model: TINY_MODEL, scoring }, "test");
    const out = join(dir.path, "kernel");
    const outcome = await runEmbeddedJob(spec, { out, storeDir: join(dir.path, "tiles"), device: "cpu" });
    assert.is(outcome.status.state, "done", outcome.status.error);
    return readFileSync(join(out, "kernel.bin"));
  } finally {
    dir.cleanup();
  }
}

/**
 * Checks a kernel's files (kernel.bin and kernel.json, as a result download gives them) over the
 * leading samples of gsm8k-32 against the Python reference fixture: ids in order, every d0, UF
 * and d1 within REFERENCE_TOLERANCE. Returns the largest difference.
 */
export async function assertMatchesReference(files: Map<string, Buffer>, what: string): Promise<number> {
  reference ??= JSON.parse(readFileSync(join(FIXTURES, "reference-kernel.json"), "utf8")) as Reference;
  const ref = reference;
  const dir = tempDir("delift-kernel-check-");
  try {
    mkdirSync(join(dir.path, "k"));
    for (const name of ["kernel.bin", "kernel.json"]) {
      assert.ok(files.has(name), `${what}: no ${name} in ${[...files.keys()].join(", ")}`);
      writeFileSync(join(dir.path, "k", name), files.get(name)!);
    }
    const k = await readKernel(join(dir.path, "k"));
    const n = k.metadata.nRows;
    assert.equal(k.metadata.rowIds, ref.ids.slice(0, n), `${what}: row ids`);
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(k.baseline[i] - ref.d0[i]));
    for (let j = 0; j < k.metadata.nCols; j++) {
      assert.is(k.csc.colPtr[j + 1] - k.csc.colPtr[j], n, `${what}: column ${j} is not dense`);
      for (let p = k.csc.colPtr[j]; p < k.csc.colPtr[j + 1]; p++) {
        const i = k.csc.rowIdx[p];
        worst = Math.max(worst, Math.abs(k.csc.values[p] - ref.uf[i][j]), Math.abs(k.baseline[i] - k.csc.values[p] - ref.d1[i][j]));
      }
    }
    assert.ok(worst <= REFERENCE_TOLERANCE, `${what}: largest difference from the Python reference ${worst} (tolerance ${REFERENCE_TOLERANCE})`);
    return worst;
  } finally {
    dir.cleanup();
  }
}

/** Byte equality of two kernel.bin files, with the first differing offset when they differ. */
export function assertSameBytes(got: Buffer, want: Buffer, what: string): void {
  if (Buffer.compare(got, want) === 0) return;
  let at = 0;
  while (at < Math.min(got.length, want.length) && got[at] === want[at]) at++;
  assert.unreachable(`${what}: kernel.bin differs (${got.length} vs ${want.length} bytes, first difference at byte ${at})`);
}
