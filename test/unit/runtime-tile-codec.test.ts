import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { ProtocolError } from "../../common/src/errors.js";
import { decodeTileMessage, encodeTileMessage, type TileMessage } from "../../common/src/tiles/codec.js";
import { encodeDeltas, encodeVarints } from "../../common/src/tiles/varint.js";

const packr = new Packr({ useRecords: false, moreTypes: false });
const TILE = "ab".repeat(32);
const CORPUS = { digest: "cd".repeat(32), count: 3 };

const baseline = (): TileMessage => ({ jobId: "job_1-x", tileId: TILE, corpus: CORPUS, work: { kind: "baseline", targets: Uint32Array.from([2, 0, 1]) } });

const pairs = (): TileMessage => {
  const rows = Uint32Array.from([0, 2]);
  return { jobId: "j2", tileId: "0f".repeat(32), corpus: CORPUS, work: { kind: "pairs", columns: [{ example: 1, rows }, { example: 2, rows: Uint32Array.from([0, 2]) }] } };
};

/** A valid raw body (what encodeTileMessage packs) to break one field at a time. */
function body(): Record<string, unknown> {
  return packr.unpack(encodeTileMessage(pairs())) as Record<string, unknown>;
}

function expectProtocolError(data: Uint8Array, pattern: RegExp | string, what: string): void {
  let err: unknown = null;
  try {
    decodeTileMessage(data);
  } catch (e) {
    err = e;
  }
  assert.ok(err !== null, `${what}: expected a ProtocolError, decoded fine`);
  assert.instance(err, ProtocolError, `${what}: got ${(err as Error)?.name}: ${(err as Error)?.message}`);
  assert.match((err as Error).message, pattern, what);
}

const mutated = (change: (b: Record<string, unknown>) => void) => {
  const b = body();
  change(b);
  return packr.pack(b);
};

test("baseline tile: encode/decode round trip, with its corpus reference", () => {
  const m = baseline();
  const back = decodeTileMessage(encodeTileMessage(m));
  assert.is(back.jobId, m.jobId);
  assert.is(back.tileId, m.tileId);
  assert.equal(back.corpus, CORPUS);
  assert.is(back.work.kind, "baseline");
  if (back.work.kind !== "baseline") return;
  assert.equal([...back.work.targets], [2, 0, 1]);
});

test("pairs tile: encode/decode round trip, every column keeps its rows (a block shares one row list)", () => {
  const m = pairs();
  const back = decodeTileMessage(encodeTileMessage(m));
  assert.is(back.work.kind, "pairs");
  if (back.work.kind !== "pairs") return;
  assert.equal(
    back.work.columns.map((c) => [c.example, [...c.rows]]),
    [
      [1, [0, 2]],
      [2, [0, 2]],
    ],
  );
  assert.ok(back.work.columns[0].rows === back.work.columns[1].rows, "a block decodes to one shared row list");
});

test("round trip of random valid tiles, any indices below 2^32 (fast-check)", () => {
  const index = fc.oneof(fc.nat({ max: 20 }), fc.integer({ min: 0, max: 2 ** 32 - 2 }));
  const arb = fc.record({
    kind: fc.constantFrom("baseline", "pairs", "sparse"),
    a: fc.array(index, { minLength: 1, maxLength: 6 }),
    rows: fc.array(fc.array(index, { minLength: 1, maxLength: 6 }), { minLength: 6, maxLength: 6 }),
    job: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
    tile: fc.stringMatching(/^[0-9a-f]{64}$/),
    digest: fc.stringMatching(/^[0-9a-f]{64}$/),
  });
  fc.assert(
    fc.property(arb, (r) => {
      const corpus = { digest: r.digest, count: 2 ** 32 - 1 };
      const shared = Uint32Array.from(r.rows[0]);
      const m: TileMessage =
        r.kind === "baseline"
          ? { jobId: r.job, tileId: r.tile, corpus, work: { kind: "baseline", targets: Uint32Array.from(r.a) } }
          : { jobId: r.job, tileId: r.tile, corpus, work: { kind: "pairs", columns: r.a.map((example, k) => ({ example, rows: r.kind === "pairs" ? shared : Uint32Array.from(r.rows[k]) })) } };
      const back = decodeTileMessage(encodeTileMessage(m));
      assert.is(back.jobId, r.job);
      assert.is(back.tileId, r.tile);
      assert.equal(back.corpus, corpus);
      if (back.work.kind === "baseline") assert.equal([...back.work.targets], r.a);
      else if (m.work.kind === "pairs") assert.equal(back.work.columns.map((col) => [col.example, [...col.rows]]), m.work.columns.map((col) => [col.example, [...col.rows]]));
    }),
    { numRuns: 300 },
  );
});

test("pair tiles whose columns score different rows (sparse mode) keep them through the codec", () => {
  const m = pairs();
  if (m.work.kind !== "pairs") return;
  m.work.columns[1].rows = Uint32Array.from([1]);
  const back = decodeTileMessage(encodeTileMessage(m));
  assert.ok(back.work.kind === "pairs");
  if (back.work.kind !== "pairs") return;
  assert.equal(back.work.columns.map((c) => Array.from(c.rows)), m.work.columns.map((c) => Array.from(c.rows)));
});

test("every malformed variant is a ProtocolError naming the problem", () => {
  const sparse = (): Record<string, unknown> => {
    const m = pairs();
    if (m.work.kind === "pairs") m.work.columns[1].rows = Uint32Array.from([1]);
    return packr.unpack(encodeTileMessage(m)) as Record<string, unknown>;
  };
  const sparseWith = (change: (b: Record<string, unknown>) => void) => {
    const b = sparse();
    change(b);
    return packr.pack(b);
  };
  const cases: [string, Uint8Array, RegExp | string][] = [
    ["not msgpack (truncated map)", Uint8Array.from([0x85, 0xa1]), /not msgpack/],
    ["empty buffer", new Uint8Array(0), /not msgpack/],
    ["a number, not a map", packr.pack(7), /not a map/],
    ["null", packr.pack(null), /not a map/],
    ["the self-contained version 1", mutated((b) => (b.v = 1)), /version 1, expected 2/],
    ["missing version", mutated((b) => delete b.v), /version/],
    ["job id with a slash", mutated((b) => (b.job = "a/b")), /bad job id/],
    ["empty job id", mutated((b) => (b.job = "")), /bad job id/],
    ["job id too long", mutated((b) => (b.job = "x".repeat(65))), /bad job id/],
    ["job id not a string", mutated((b) => (b.job = 12)), /bad job id/],
    ["tile id upper-case", mutated((b) => (b.tile = "AB".repeat(32))), /bad tile id/],
    ["tile id short", mutated((b) => (b.tile = "ab".repeat(31))), /bad tile id/],
    ["corpus digest missing", mutated((b) => delete b.corpus), /bad corpus digest/],
    ["corpus digest short", mutated((b) => (b.corpus = "cd".repeat(31))), /bad corpus digest/],
    ["corpus digest as bytes", mutated((b) => (b.corpus = new Uint8Array(32))), /bad corpus digest/],
    ["sample count missing", mutated((b) => delete b.n), /bad sample count/],
    ["sample count zero", mutated((b) => (b.n = 0)), /bad sample count 0/],
    ["sample count fractional", mutated((b) => (b.n = 2.5)), /bad sample count/],
    ["sample count too large", mutated((b) => (b.n = 2 ** 32)), /bad sample count/],
    ["columns as an array, not binary", mutated((b) => (b.columns = [1, 2])), /columns must be binary/],
    ["rows as a string", mutated((b) => (b.rows = "abcd")), /rows must be binary/],
    ["rows missing", mutated((b) => delete b.rows), /rows must be binary/],
    ["rows end inside a varint", mutated((b) => (b.rows = Uint8Array.from([0x80]))), /ends inside a varint/],
    ["a varint too long", mutated((b) => (b.rows = Uint8Array.from([0x81, 0x81, 0x81, 0x81, 0x81, 0x01]))), /too (long|large)/],
    ["a delta below zero", mutated((b) => (b.rows = encodeVarints([3]))), /out of the u32 range/],
    ["column out of range", mutated((b) => (b.columns = encodeDeltas([1, 3]))), /column index 3 out of range/],
    ["row out of range", mutated((b) => (b.rows = encodeDeltas([0, 7]))), /row index 7 out of range/],
    ["an index out of range of a smaller corpus", mutated((b) => (b.n = 2)), /column index 2 out of range \(2 samples\)/],
    ["no columns", mutated((b) => (b.columns = new Uint8Array(0))), /empty tile/],
    ["no rows", mutated((b) => (b.rows = new Uint8Array(0))), /empty tile/],
    ["sparse: lengths not binary", sparseWith((b) => (b.lengths = [2, 1])), /lengths must be binary/],
    ["sparse: one length missing", sparseWith((b) => (b.lengths = encodeVarints([3]))), /one count per column/],
    ["sparse: lengths do not add up", sparseWith((b) => (b.lengths = encodeVarints([1, 1]))), /add up to 2, the rows hold 3/],
    ["unknown kind", mutated((b) => (b.kind = "triples")), /unknown kind "triples"/],
    ["kind from the prototype", mutated((b) => (b.kind = "toString")), /unknown kind "toString"/],
    ["no kind", mutated((b) => delete b.kind), /unknown kind/],
  ];
  // Baseline variants.
  const base = packr.unpack(encodeTileMessage(baseline())) as Record<string, unknown>;
  const baseWith = (change: (b: Record<string, unknown>) => void) => {
    const b = { ...base };
    change(b);
    return packr.pack(b);
  };
  cases.push(
    ["baseline without targets", baseWith((b) => (b.targets = new Uint8Array(0))), /no targets/],
    ["baseline target out of range", baseWith((b) => (b.targets = encodeDeltas([0, 3]))), /target index 3 out of range/],
    ["baseline targets not binary", baseWith((b) => (b.targets = [0])), /targets must be binary/],
  );
  for (const [what, data, pattern] of cases) expectProtocolError(data, pattern, what);
  // The valid bodies really decode: the failures above come from the one field changed.
  decodeTileMessage(packr.pack(body()));
  decodeTileMessage(packr.pack(base));
  decodeTileMessage(packr.pack(sparse()));
});

test("random byte strings never throw anything but ProtocolError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (data) => {
      try {
        decodeTileMessage(data);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw new Error(`${(err as Error)?.name}: ${(err as Error)?.message}`);
      }
    }),
    { numRuns: 3000 },
  );
});

test("random msgpack objects around the tile fields never throw anything but ProtocolError", () => {
  const anyValue = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 8 }),
    fc.uint8Array({ maxLength: 24 }),
    fc.array(fc.integer(), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 3 }),
  );
  const field = (valid: unknown) => fc.oneof(fc.constant(valid), anyValue, fc.constant(undefined));
  const arb = fc.record({
    v: field(2),
    job: field("job1"),
    tile: field(TILE),
    kind: fc.oneof(fc.constant("pairs"), fc.constant("baseline"), anyValue, fc.constant(undefined)),
    corpus: field("cd".repeat(32)),
    n: field(3),
    columns: field(encodeDeltas([1, 2])),
    rows: field(encodeDeltas([0, 2, 1])),
    lengths: field(encodeVarints([2, 1])),
    targets: field(encodeDeltas([0])),
    extra: anyValue,
  });
  fc.assert(
    fc.property(fc.oneof(arb, anyValue), (value) => {
      let data: Uint8Array;
      try {
        data = packr.pack(value);
      } catch {
        return; // not encodable: nothing to check
      }
      try {
        decodeTileMessage(data);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw new Error(`${(err as Error)?.name}: ${(err as Error)?.message} for ${JSON.stringify(value)}`);
      }
    }),
    { numRuns: 3000 },
  );
});

test("a map whose toString is not a function is a ProtocolError, not a TypeError", () => {
  const badVersion = mutated((b) => (b.v = { toString: 1 }));
  const badKind = mutated((b) => (b.kind = { toString: 1, valueOf: 2 }));
  for (const data of [badVersion, badKind]) {
    let err: unknown = null;
    try {
      decodeTileMessage(data);
    } catch (e) {
      err = e;
    }
    assert.instance(err, ProtocolError);
  }
});

test.run();
