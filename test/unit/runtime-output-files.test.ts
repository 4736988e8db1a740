import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { ConfigError, InputError } from "../../common/src/errors.js";
import { KERNEL_FILES, KERNEL_FORMAT, readKernel, writeKernel, type UtilityKernel } from "../../common/src/kernel/kernel-files.js";
import { writeOutputDir } from "../../common/src/util/output-dir.js";
import { tempDir } from "../helpers/paths.js";

const OWNED = ["a.txt", "b.txt"];

// ---- writeOutputDir ----------------------------------------------------------------------------

test("writeOutputDir: writes into place (creating parents) and leaves no temp sibling", async () => {
  const t = tempDir();
  try {
    const out = join(t.path, "deep", "out");
    await writeOutputDir(out, OWNED, async (tmp) => {
      assert.is.not(tmp, out, "fill writes elsewhere first");
      assert.not.ok(existsSync(out), "nothing at the target while filling");
      await writeFile(join(tmp, "a.txt"), "A");
    });
    assert.is(readFileSync(join(out, "a.txt"), "utf8"), "A");
    assert.equal(readdirSync(join(t.path, "deep")), ["out"]);
  } finally {
    t.cleanup();
  }
});

test("writeOutputDir: a fill() that throws leaves no directory and no temp sibling", async () => {
  const t = tempDir();
  try {
    const out = join(t.path, "out");
    const err = await writeOutputDir(out, OWNED, async (tmp) => {
      await writeFile(join(tmp, "a.txt"), "half");
      throw new Error("disk full");
    }).catch((e) => e);
    assert.instance(err, Error);
    assert.is((err as Error).message, "disk full", "the fill's own error comes through");
    assert.not.ok(existsSync(out));
    assert.equal(readdirSync(t.path), [], "no temp sibling left");
  } finally {
    t.cleanup();
  }
});

test("writeOutputDir: a failing fill over an existing output keeps the old output", async () => {
  const t = tempDir();
  try {
    const out = join(t.path, "out");
    mkdirSync(out);
    writeFileSync(join(out, "a.txt"), "old");
    await writeOutputDir(out, OWNED, async () => {
      throw new Error("interrupted");
    }).catch(() => undefined);
    assert.is(readFileSync(join(out, "a.txt"), "utf8"), "old");
    assert.equal(readdirSync(t.path), ["out"]);
  } finally {
    t.cleanup();
  }
});

test("writeOutputDir: an existing directory holding a foreign file is refused and left untouched", async () => {
  const t = tempDir();
  try {
    const out = join(t.path, "out");
    mkdirSync(out);
    writeFileSync(join(out, "a.txt"), "owned");
    writeFileSync(join(out, "thesis.tex"), "precious");
    let filled = false;
    const err = await writeOutputDir(out, OWNED, async (tmp) => {
      filled = true;
      await writeFile(join(tmp, "a.txt"), "new");
    }).catch((e) => e);
    assert.instance(err, ConfigError);
    assert.match((err as Error).message, "thesis.tex");
    assert.not.ok(filled, "fill is never called");
    assert.equal(readdirSync(out).sort(), ["a.txt", "thesis.tex"]);
    assert.is(readFileSync(join(out, "thesis.tex"), "utf8"), "precious");
    assert.is(readFileSync(join(out, "a.txt"), "utf8"), "owned");
    assert.equal(readdirSync(t.path), ["out"]);
  } finally {
    t.cleanup();
  }
});

test("writeOutputDir: a target that is a file is refused with ConfigError", async () => {
  const t = tempDir();
  try {
    const out = join(t.path, "out");
    writeFileSync(out, "a file");
    const err = await writeOutputDir(out, OWNED, async () => undefined).catch((e) => e);
    assert.instance(err, ConfigError);
    assert.is(readFileSync(out, "utf8"), "a file");
  } finally {
    t.cleanup();
  }
});

test("writeOutputDir: an existing directory holding only owned names is replaced as a whole", async () => {
  const t = tempDir();
  try {
    const out = join(t.path, "out");
    mkdirSync(out);
    writeFileSync(join(out, "a.txt"), "old a");
    writeFileSync(join(out, "b.txt"), "old b");
    await writeOutputDir(out, OWNED, async (tmp) => {
      await writeFile(join(tmp, "a.txt"), "new a");
    });
    assert.equal(readdirSync(out), ["a.txt"], "b.txt from the old run is gone");
    assert.is(readFileSync(join(out, "a.txt"), "utf8"), "new a");
    assert.equal(readdirSync(t.path), ["out"], "no .old or .tmp sibling left");
    // An empty existing directory is replaceable too.
    const empty = join(t.path, "empty");
    mkdirSync(empty);
    await writeOutputDir(empty, OWNED, async (tmp) => writeFile(join(tmp, "b.txt"), "b"));
    assert.equal(readdirSync(empty), ["b.txt"]);
  } finally {
    t.cleanup();
  }
});

// ---- kernel files --------------------------------------------------------------------------------

/** 3 rows x 4 columns; column 2 is empty. */
function kernel(): UtilityKernel {
  const csc = {
    nRows: 3,
    nCols: 4,
    colPtr: Uint32Array.from([0, 2, 3, 3, 6]),
    rowIdx: Uint32Array.from([0, 2, 1, 0, 1, 2]),
    values: Float32Array.from([0.5, -0.25, 0.125, 1, -1, 0.75]),
  };
  return {
    csc,
    baseline: Float32Array.from([0.9, 0.8, 0.7]),
    metadata: {
      format: KERNEL_FORMAT,
      nRows: 3,
      nCols: 4,
      nnz: 6,
      rowIds: ["r0", "r1", "r2"],
      colIds: ["c0", "c1", "c2", "c3"],
      modelHash: "m".repeat(8),
      settingsKey: "s".repeat(8),
      maxLength: 256,
      truncated: { baseline: 1, pairs: 2 },
      note: "extra fields survive",
    },
  };
}

function triplets(k: UtilityKernel): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let j = 0; j < k.csc.nCols; j++) {
    for (let p = k.csc.colPtr[j]; p < k.csc.colPtr[j + 1]; p++) out.push([k.csc.rowIdx[p], j, k.csc.values[p]]);
  }
  return out;
}

test("writeKernel/readKernel round trip: CSC arrays, baseline and metadata", async () => {
  const t = tempDir();
  try {
    const dir = join(t.path, "kernel");
    const k = kernel();
    await writeKernel(dir, k);
    assert.equal(readdirSync(dir).sort(), [...KERNEL_FILES].sort());
    const back = await readKernel(dir);
    assert.is(back.csc.nRows, 3);
    assert.is(back.csc.nCols, 4);
    assert.equal([...back.csc.colPtr], [...k.csc.colPtr]);
    assert.equal([...back.csc.rowIdx], [...k.csc.rowIdx]);
    assert.equal([...back.csc.values], [...k.csc.values]);
    assert.equal([...back.baseline], [...k.baseline]);
    assert.instance(back.csc.values, Float32Array);
    assert.equal(back.metadata, k.metadata);
    assert.equal(readdirSync(t.path), ["kernel"], "no temp sibling");
  } finally {
    t.cleanup();
  }
});

test("kernel.parquet read with hyparquet gives the same (row, col, utility) triplets", async () => {
  const t = tempDir();
  try {
    const dir = join(t.path, "kernel");
    const k = kernel();
    await writeKernel(dir, k);
    const file = await asyncBufferFromFile(join(dir, "kernel.parquet"));
    const rows = (await parquetReadObjects({ file })) as { row: number; col: number; utility: number }[];
    const got = rows.map((r) => [Number(r.row), Number(r.col), r.utility] as [number, number, number]);
    const key = (a: [number, number, number]) => a[1] * 1000 + a[0];
    assert.equal(
      got.sort((a, b) => key(a) - key(b)),
      triplets(k).sort((a, b) => key(a) - key(b)),
    );
    assert.is(got.length, 6);
  } finally {
    t.cleanup();
  }
});

test("a larger random kernel survives both files", async () => {
  const t = tempDir();
  try {
    const nRows = 37;
    const nCols = 23;
    const colPtr = new Uint32Array(nCols + 1);
    const rowIdx: number[] = [];
    const values: number[] = [];
    let s = 12345;
    const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let j = 0; j < nCols; j++) {
      for (let i = 0; i < nRows; i++) {
        if (rand() < 0.3) {
          rowIdx.push(i);
          values.push(Math.fround(rand() * 2 - 1));
        }
      }
      colPtr[j + 1] = rowIdx.length;
    }
    const k: UtilityKernel = {
      csc: { nRows, nCols, colPtr, rowIdx: Uint32Array.from(rowIdx), values: Float32Array.from(values) },
      baseline: Float32Array.from({ length: nRows }, (_, i) => i / nRows),
      metadata: { ...kernel().metadata, nRows, nCols, nnz: rowIdx.length, rowIds: [], colIds: [] },
    };
    const dir = join(t.path, "k");
    await writeKernel(dir, k);
    const back = await readKernel(dir);
    assert.equal(triplets(back), triplets(k));
    const rows = (await parquetReadObjects({ file: await asyncBufferFromFile(join(dir, "kernel.parquet")) })) as { row: number; col: number; utility: number }[];
    assert.equal(
      rows.map((r) => [Number(r.row), Number(r.col), r.utility]),
      triplets(k),
      "parquet rows come column by column",
    );
  } finally {
    t.cleanup();
  }
});

test("a truncated kernel.bin is an InputError naming the file", async () => {
  const t = tempDir();
  try {
    const dir = join(t.path, "kernel");
    await writeKernel(dir, kernel());
    const bin = join(dir, "kernel.bin");
    const size = statSync(bin).size;
    for (const cut of [size - 4, size - 1, 30, 10]) {
      truncateSync(bin, cut);
      const err = await readKernel(dir).catch((e) => e);
      assert.instance(err, InputError, `cut to ${cut} bytes`);
      assert.is((err as InputError).location.file, bin);
    }
  } finally {
    t.cleanup();
  }
});

test("readKernel: a wrong magic, a shape that disagrees with kernel.json, or a missing file are InputErrors", async () => {
  const t = tempDir();
  try {
    const dir = join(t.path, "kernel");
    await writeKernel(dir, kernel());
    const bin = join(dir, "kernel.bin");
    const json = join(dir, "kernel.json");
    const original = readFileSync(bin);

    const bad = Buffer.from(original);
    bad[0] = 0x58;
    writeFileSync(bin, bad);
    assert.match(((await readKernel(dir).catch((e) => e)) as Error).message, /not a delift kernel file/);
    writeFileSync(bin, original);

    const meta = JSON.parse(readFileSync(json, "utf8"));
    writeFileSync(json, JSON.stringify({ ...meta, nnz: 5 }));
    const e2 = await readKernel(dir).catch((e) => e);
    assert.instance(e2, InputError);
    assert.match((e2 as Error).message, /shape does not match/);

    writeFileSync(json, JSON.stringify({ ...meta, format: "other/9" }));
    const e3 = await readKernel(dir).catch((e) => e);
    assert.instance(e3, InputError);
    assert.is((e3 as InputError).location.field, "format");

    const e4 = await readKernel(join(t.path, "nowhere")).catch((e) => e);
    assert.instance(e4, InputError);
  } finally {
    t.cleanup();
  }
});

test("writeKernel refuses a directory holding foreign files and leaves it alone", async () => {
  const t = tempDir();
  try {
    const dir = join(t.path, "kernel");
    mkdirSync(dir);
    writeFileSync(join(dir, "notes.md"), "mine");
    const err = await writeKernel(dir, kernel()).catch((e) => e);
    assert.instance(err, ConfigError);
    assert.equal(readdirSync(dir), ["notes.md"]);
  } finally {
    t.cleanup();
  }
});

test.run();
