import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdirSync, readFileSync, readdirSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ConfigError, InputError } from "../../common/src/errors.js";
import {
  CHUNKED_INDEX_FILE,
  ChunkedKernel,
  ChunkedKernelWriter,
  readChunkedKernel,
  readKernel,
  utilityKernelToChunked,
  writeChunkedKernel,
  writeKernel,
  KERNEL_FORMAT,
} from "../../common/src/mod.js";
import { randomSparseKernel, scaleKernelInPlace, scaleValuesInPlace, type CscKernel } from "../../common/src/selection/mod.js";
import { tempDir } from "../helpers/paths.js";

/** A kernel with empty columns and columns of varying length (values in [-1, 2)). */
function awkwardKernel(nRows: number, nCols: number, seed: number): CscKernel {
  const base = randomSparseKernel({ nRows, nCols, perColumn: Math.min(5, nRows), seed });
  const colPtr = new Uint32Array(nCols + 1);
  const rows: number[] = [];
  const values: number[] = [];
  for (let j = 0; j < nCols; j++) {
    const keep = j % 7 === 3 ? 0 : 1 + (j % 5);
    for (let p = base.colPtr[j]; p < base.colPtr[j] + keep; p++) {
      rows.push(base.rowIdx[p]);
      values.push(base.values[p] * 3 - 1);
    }
    colPtr[j + 1] = rows.length;
  }
  return { nRows, nCols, colPtr, rowIdx: Uint32Array.from(rows), values: Float32Array.from(values) };
}

function sliceColumns(k: CscKernel, a: number, b: number): CscKernel {
  const from = k.colPtr[a];
  const to = k.colPtr[b];
  return {
    nRows: k.nRows,
    nCols: b - a,
    colPtr: Uint32Array.from(k.colPtr.subarray(a, b + 1), (v) => v - from),
    rowIdx: k.rowIdx.slice(from, to),
    values: k.values.slice(from, to),
  };
}

function sameKernel(got: CscKernel, want: CscKernel, what: string): void {
  assert.is(got.nRows, want.nRows, `${what}: nRows`);
  assert.is(got.nCols, want.nCols, `${what}: nCols`);
  assert.equal(Array.from(got.colPtr), Array.from(want.colPtr), `${what}: colPtr`);
  assert.equal(Array.from(got.rowIdx), Array.from(want.rowIdx), `${what}: rowIdx`);
  assert.equal(Buffer.from(got.values.buffer, got.values.byteOffset, got.values.byteLength), Buffer.from(want.values.buffer, want.values.byteOffset, want.values.byteLength), `${what}: values`);
}

async function rejects(fn: () => Promise<unknown>, cls: Function, pattern: RegExp): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.instance(err, cls, `expected ${cls.name}, got ${(err as Error).name}: ${(err as Error).message}`);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a ${cls.name} matching ${pattern}`);
}

test("chunked kernel: round trip of chunks, column ranges, baseline, ids and metadata", async () => {
  const dir = tempDir();
  try {
    const kernel = awkwardKernel(40, 230, 3);
    const baseline = Float32Array.from({ length: 40 }, (_, i) => i / 7);
    const rowIds = Array.from({ length: 40 }, (_, i) => `r"${i}\n`);
    const colIds = Array.from({ length: 230 }, (_, j) => `c${j}`);
    const out = join(dir.path, "k");
    // About 60 entries per chunk: many chunks, some cut by every range below.
    const index = await writeChunkedKernel(out, kernel, { baseline, rowIds, colIds, metadata: { modelHash: "abc" } }, { chunkBytes: 480 });
    assert.ok(index.chunks.length > 5, `${index.chunks.length} chunks`);
    assert.is(index.nnz, kernel.rowIdx.length);
    let min = Infinity;
    let max = -Infinity;
    for (const v of kernel.values) (min = Math.min(min, v)), (max = Math.max(max, v));
    assert.equal(index.valueRange, { min, max });

    const opened = await ChunkedKernel.open(out);
    for (let c = 0; c < index.chunks.length; c++) {
      const chunk = await opened.readChunk(c);
      sameKernel(chunk.kernel, sliceColumns(kernel, chunk.colStart, chunk.colEnd), `chunk ${c}`);
      // One buffer per chunk: the three arrays are views of it.
      assert.ok(chunk.kernel.rowIdx.buffer === chunk.kernel.values.buffer && chunk.kernel.colPtr.buffer === chunk.kernel.values.buffer);
    }
    for (const [a, b] of [[0, 230], [0, 1], [229, 230], [17, 18], [3, 200], [index.chunks[2].colStart, index.chunks[4].colEnd], [index.chunks[1].colStart + 1, index.chunks[1].colEnd - 1]]) {
      sameKernel(await opened.readColumns(a, b), sliceColumns(kernel, a, b), `columns [${a}, ${b})`);
    }
    for (const parts of [1, 2, 3, 4, 7, 1000]) {
      const ranges = opened.chunkAlignedRanges(parts);
      assert.is(ranges.length, Math.min(parts, index.chunks.length));
      assert.is(ranges[0].colStart, 0);
      assert.is(ranges[ranges.length - 1].colEnd, 230);
      const starts = new Set(index.chunks.map((c) => c.colStart));
      ranges.forEach((r, i) => {
        assert.ok(r.colEnd > r.colStart && starts.has(r.colStart));
        if (i > 0) assert.is(r.colStart, ranges[i - 1].colEnd);
      });
    }
    const whole = await readChunkedKernel(out);
    sameKernel(whole.csc, kernel, "whole");
    assert.equal(Array.from(whole.baseline!), Array.from(baseline));
    assert.equal(whole.rowIds, rowIds);
    assert.equal(whole.colIds, colIds);
    assert.equal(whole.index.metadata, { modelHash: "abc" });
    assert.not.ok(readdirSync(dir.path).some((e) => e.includes(".tmp-")), "no temporary directory left");
  } finally {
    dir.cleanup();
  }
});

test("chunked kernel: min-max and clip scaling chunk by chunk with the index's range equal scaling the whole kernel, bit for bit", async () => {
  const dir = tempDir();
  try {
    const kernel = awkwardKernel(50, 300, 11);
    const out = join(dir.path, "k");
    const index = await writeChunkedKernel(out, kernel, {}, { chunkBytes: 400 });
    const opened = await ChunkedKernel.open(out);
    for (const scaling of ["min-max", "clip-at-zero"] as const) {
      const whole = { ...kernel, values: kernel.values.slice() };
      const wholeReport = scaleKernelInPlace(whole, scaling);
      const parts: Float32Array[] = [];
      for (let c = 0; c < index.chunks.length; c++) {
        const chunk = await opened.readChunk(c);
        const report = scaleValuesInPlace(chunk.kernel.values, scaling, index.valueRange);
        assert.equal(report, wholeReport);
        parts.push(chunk.kernel.values);
      }
      const joined = new Float32Array(kernel.values.length);
      let at = 0;
      for (const p of parts) joined.set(p, (at += p.length) - p.length);
      assert.equal(Buffer.from(joined.buffer), Buffer.from(whole.values.buffer), scaling);
    }
  } finally {
    dir.cleanup();
  }
});

test("chunked kernel: readKernel reads the chunked form of a kernel.bin kernel identically", async () => {
  const dir = tempDir();
  try {
    const csc = awkwardKernel(12, 12, 5);
    const metadata = {
      format: KERNEL_FORMAT,
      nRows: 12,
      nCols: 12,
      nnz: csc.rowIdx.length,
      rowIds: Array.from({ length: 12 }, (_, i) => `s${i}`),
      colIds: Array.from({ length: 12 }, (_, i) => `s${i}`),
      modelHash: "m",
      settingsKey: "k",
      maxLength: 64,
      truncated: { baseline: 0, pairs: 1 },
    } as const;
    const utility = { csc, baseline: Float32Array.from({ length: 12 }, (_, i) => i), metadata: { ...metadata, rowIds: [...metadata.rowIds], colIds: [...metadata.colIds] } };
    await writeKernel(join(dir.path, "bin"), utility);
    const fromBin = await readKernel(join(dir.path, "bin"));
    await utilityKernelToChunked(join(dir.path, "chunked"), fromBin, { chunkBytes: 64 });
    const fromChunks = await readKernel(join(dir.path, "chunked"));
    sameKernel(fromChunks.csc, fromBin.csc, "csc");
    assert.equal(Array.from(fromChunks.baseline), Array.from(fromBin.baseline));
    assert.equal(fromChunks.metadata, fromBin.metadata);
    // Without ids or baseline it is a kernel to select from, not one to reuse for a data set.
    await writeChunkedKernel(join(dir.path, "bare"), csc);
    await rejects(() => readKernel(join(dir.path, "bare")), InputError, /no baseline or sample ids/);
  } finally {
    dir.cleanup();
  }
});

test("chunked kernel: corrupt, torn and missing files give errors that name the file", async () => {
  const dir = tempDir();
  try {
    const kernel = awkwardKernel(30, 120, 8);
    const fresh = async (name: string) => {
      const out = join(dir.path, name);
      const index = await writeChunkedKernel(out, kernel, { baseline: new Float32Array(30) }, { chunkBytes: 200 });
      return { out, index, chunk: join(out, index.chunks[1].file) };
    };
    {
      const { out, chunk } = await fresh("flipped");
      const bytes = readFileSync(chunk);
      bytes[bytes.length - 3] ^= 0x40;
      writeFileSync(chunk, bytes);
      const opened = await ChunkedKernel.open(out);
      await rejects(() => opened.readChunk(1), InputError, /chunk-000001\.bin.*sha256 .* does not match/);
      await rejects(() => opened.readColumns(0, 120), InputError, /chunk-000001\.bin.*corrupt/);
      // Reading without the checksum still checks the structure; a flipped value bit may pass it, a flipped row cannot.
    }
    {
      const { out, chunk } = await fresh("torn");
      truncateSync(chunk, 40);
      await rejects(() => ChunkedKernel.open(out), InputError, /chunk-000001\.bin: size 40 bytes, the index says \d+ \(torn/);
    }
    {
      const { out, chunk } = await fresh("missing");
      unlinkSync(chunk);
      await rejects(() => ChunkedKernel.open(out), InputError, /chunk-000001\.bin: missing: ENOENT/);
    }
    {
      const { out } = await fresh("torn-index");
      const text = readFileSync(join(out, CHUNKED_INDEX_FILE), "utf8");
      writeFileSync(join(out, CHUNKED_INDEX_FILE), text.slice(0, text.length / 2));
      await rejects(() => ChunkedKernel.open(out), InputError, /kernel-chunks\.json: not valid JSON/);
    }
    {
      const { out } = await fresh("gap");
      const path = join(out, CHUNKED_INDEX_FILE);
      const index = JSON.parse(readFileSync(path, "utf8"));
      index.chunks.splice(2, 1);
      writeFileSync(path, JSON.stringify(index));
      await rejects(() => ChunkedKernel.open(out), InputError, /field "chunks\[2\]\.colStart": chunks must cover the columns in order/);
    }
    {
      // A chunk whose rows are out of order, with a checksum that matches: the structure check catches it.
      const { out, index, chunk } = await fresh("unsorted");
      const bytes = readFileSync(chunk);
      const e = index.chunks[1];
      const rowsAt = 32 + 4 * (e.colEnd - e.colStart + 1);
      const view = new DataView(bytes.buffer, bytes.byteOffset);
      const firstColumn = kernel.colPtr[e.colStart + 1] - kernel.colPtr[e.colStart] >= 1 ? 0 : 1;
      view.setUint32(rowsAt + 4 * (kernel.colPtr[e.colStart + firstColumn] - kernel.colPtr[e.colStart]), 30, true);
      writeFileSync(chunk, bytes);
      const path = join(out, CHUNKED_INDEX_FILE);
      const json = JSON.parse(readFileSync(path, "utf8"));
      json.chunks[1].sha256 = createHash("sha256").update(bytes).digest("hex");
      writeFileSync(path, JSON.stringify(json));
      const opened = await ChunkedKernel.open(out);
      await rejects(() => opened.readChunk(1), InputError, /chunk-000001\.bin field "column \d+": row 30 out of range or out of order/);
    }
    {
      const { out } = await fresh("baseline");
      writeFileSync(join(out, "baseline.f32"), new Uint8Array(120).fill(1));
      const opened = await ChunkedKernel.open(out);
      await rejects(() => opened.readBaseline(), InputError, /baseline\.f32: sha256/);
    }
  } finally {
    dir.cleanup();
  }
});

test("chunked writer: bad columns are refused, an abort or a failure leaves nothing, a foreign directory is kept", async () => {
  const dir = tempDir();
  try {
    const out = join(dir.path, "k");
    const w = await ChunkedKernelWriter.create(out, { nRows: 5, chunkBytes: 16 });
    assert.ok(w.appendColumn(Uint32Array.of(0, 3), Float32Array.of(1, 2)) || true);
    assert.throws(() => w.appendColumn(Uint32Array.of(3, 1), Float32Array.of(1, 2)), (e: Error) => e instanceof ConfigError && /column 1: rows must be strictly ascending/.test(e.message));
    assert.throws(() => w.appendColumn(Uint32Array.of(5), Float32Array.of(1)), (e: Error) => e instanceof ConfigError && /row 5 out of range/.test(e.message));
    assert.throws(() => w.appendColumn(Uint32Array.of(1), Float32Array.of(NaN)), (e: Error) => e instanceof ConfigError && /not finite/.test(e.message));
    await w.drain();
    await w.abort();
    assert.not.ok(existsSync(out));
    assert.equal(readdirSync(dir.path), []);

    const failing = await ChunkedKernelWriter.create(out, { nRows: 5 });
    await rejects(() => failing.finish({ baseline: new Float32Array(3) }), ConfigError, /at least one column/);
    assert.equal(readdirSync(dir.path), []);

    const foreign = join(dir.path, "mine");
    mkdirSync(foreign);
    writeFileSync(join(foreign, "notes.txt"), "keep me");
    await rejects(() => ChunkedKernelWriter.create(foreign, { nRows: 3 }), ConfigError, /already holds files delift did not write/);
    assert.is(readFileSync(join(foreign, "notes.txt"), "utf8"), "keep me");

    // An existing chunked kernel is replaced whole.
    await writeChunkedKernel(out, awkwardKernel(5, 40, 1), {}, { chunkBytes: 16 });
    const second = awkwardKernel(5, 3, 2);
    await writeChunkedKernel(out, second);
    sameKernel((await readChunkedKernel(out)).csc, second, "replaced");
    assert.equal(readdirSync(out).sort(), ["chunk-000000.bin", CHUNKED_INDEX_FILE]);
  } finally {
    dir.cleanup();
  }
});

test.run();
