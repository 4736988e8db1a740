import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { ProtocolError } from "../../common/src/errors.js";
import { packPieces } from "../../common/src/data/tokenized-corpus.js";
import { decodeTileMessage, encodeTileMessage, type TileMessage } from "../../common/src/tiles/codec.js";

const packr = new Packr({ useRecords: false, moreTypes: false });
const TILE = "ab".repeat(32);

/** Three samples: x/y token ids. */
const corpus = () =>
  packPieces(
    [
      [5, 6, 7],
      [8, 9],
      [10],
      [11, 12, 13, 14],
      [],
      [15],
    ],
    11,
  );

const baseline = (): TileMessage => ({ jobId: "job_1-x", tileId: TILE, work: { kind: "baseline", samples: corpus(), targets: Uint32Array.from([2, 0, 1]) } });

const pairs = (): TileMessage => {
  const rows = Uint32Array.from([0, 2]);
  return { jobId: "j2", tileId: "0f".repeat(32), work: { kind: "pairs", samples: corpus(), columns: [{ example: 1, rows }, { example: 2, rows: Uint32Array.from([0, 2]) }] } };
};

const le32 = (values: number[], signed = false) => {
  const a = signed ? Int32Array.from(values) : Uint32Array.from(values);
  return new Uint8Array(a.buffer);
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

test("baseline tile: encode/decode round trip", () => {
  const m = baseline();
  const back = decodeTileMessage(encodeTileMessage(m));
  assert.is(back.jobId, m.jobId);
  assert.is(back.tileId, m.tileId);
  assert.is(back.work.kind, "baseline");
  if (back.work.kind !== "baseline" || m.work.kind !== "baseline") return;
  assert.equal([...back.work.targets], [2, 0, 1]);
  assert.is(back.work.samples.count, 3);
  assert.equal([...back.work.samples.ids], [...m.work.samples.ids]);
  assert.equal([...back.work.samples.offsets], [...m.work.samples.offsets]);
  assert.instance(back.work.samples.ids, Int32Array);
});

test("pairs tile: encode/decode round trip, every column keeps its rows", () => {
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
  assert.equal([...back.work.samples.ids], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  assert.equal([...back.work.samples.offsets], [0, 3, 5, 6, 10, 10, 11]);
});

test("round trip of random valid tiles (fast-check)", () => {
  const arb = fc
    .array(fc.tuple(fc.array(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { maxLength: 6 }), fc.array(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { maxLength: 6 })), {
      minLength: 1,
      maxLength: 8,
    })
    .chain((samples) =>
      fc.record({
        samples: fc.constant(samples),
        kind: fc.constantFrom("baseline", "pairs"),
        a: fc.array(fc.nat({ max: samples.length - 1 }), { minLength: 1, maxLength: 6 }),
        b: fc.array(fc.nat({ max: samples.length - 1 }), { minLength: 1, maxLength: 6 }),
        job: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
        tile: fc.stringMatching(/^[0-9a-f]{64}$/),
      }),
    );
  fc.assert(
    fc.property(arb, (r) => {
      const pieces = r.samples.flatMap(([x, y]) => [x, y]);
      const c = packPieces(pieces, pieces.reduce((s, p) => s + p.length, 0));
      const rows = Uint32Array.from(r.b);
      const m: TileMessage =
        r.kind === "baseline"
          ? { jobId: r.job, tileId: r.tile, work: { kind: "baseline", samples: c, targets: Uint32Array.from(r.a) } }
          : { jobId: r.job, tileId: r.tile, work: { kind: "pairs", samples: c, columns: r.a.map((example) => ({ example, rows })) } };
      const back = decodeTileMessage(encodeTileMessage(m));
      assert.is(back.jobId, r.job);
      assert.is(back.tileId, r.tile);
      assert.equal([...back.work.samples.ids], [...c.ids]);
      assert.equal([...back.work.samples.offsets], [...c.offsets]);
      if (back.work.kind === "baseline") assert.equal([...back.work.targets], r.a);
      else assert.equal(back.work.columns.map((col) => [col.example, [...col.rows]]), r.a.map((e) => [e, r.b]));
    }),
    { numRuns: 200 },
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
  const cases: [string, Uint8Array, RegExp | string][] = [
    ["not msgpack (truncated map)", Uint8Array.from([0x85, 0xa1]), /not msgpack/],
    ["empty buffer", new Uint8Array(0), /not msgpack/],
    ["a number, not a map", packr.pack(7), /not a map/],
    ["null", packr.pack(null), /not a map/],
    ["wrong version", mutated((b) => (b.v = 2)), /version 2/],
    ["missing version", mutated((b) => delete b.v), /version/],
    ["job id with a slash", mutated((b) => (b.job = "a/b")), /bad job id/],
    ["empty job id", mutated((b) => (b.job = "")), /bad job id/],
    ["job id too long", mutated((b) => (b.job = "x".repeat(65))), /bad job id/],
    ["job id not a string", mutated((b) => (b.job = 12)), /bad job id/],
    ["tile id upper-case", mutated((b) => (b.tile = "AB".repeat(32))), /bad tile id/],
    ["tile id short", mutated((b) => (b.tile = "ab".repeat(31))), /bad tile id/],
    ["ids as an array, not binary", mutated((b) => (b.ids = [1, 2, 3])), /ids must be binary/],
    ["ids as a string", mutated((b) => (b.ids = "abcd")), /ids must be binary/],
    ["offsets missing", mutated((b) => delete b.offsets), /offsets must be binary/],
    ["ids length not a multiple of 4", mutated((b) => (b.ids = new Uint8Array(6))), /ids length is not a multiple of 4/],
    ["offsets length not a multiple of 4", mutated((b) => (b.offsets = new Uint8Array(3))), /offsets length is not a multiple of 4/],
    ["offsets of even length", mutated((b) => (b.offsets = le32([0, 3, 5, 6, 10, 11]))), /2n\+1/],
    ["offsets not starting at 0", mutated((b) => (b.offsets = le32([1, 3, 5, 6, 10, 10, 11]))), /do not span/],
    ["offsets not ending at the id count", mutated((b) => (b.offsets = le32([0, 3, 5, 6, 10, 10, 9]))), /do not span/],
    ["decreasing offsets", mutated((b) => (b.offsets = le32([0, 5, 3, 6, 10, 10, 11]))), /offsets decrease/],
    ["negative token id", mutated((b) => (b.ids = le32([5, 6, 7, 8, 9, -10, 11, 12, 13, 14, 15], true))), /negative token id/],
    ["column out of range", mutated((b) => (b.columns = le32([1, 3]))), /column index 3 out of range/],
    ["row out of range", mutated((b) => (b.rows = le32([0, 7]))), /row index 7 out of range/],
    ["no columns", mutated((b) => (b.columns = new Uint8Array(0))), /empty tile/],
    ["no rows", mutated((b) => (b.rows = new Uint8Array(0))), /empty tile/],
    ["rows missing", mutated((b) => delete b.rows), /rows must be binary/],
    ["unknown kind", mutated((b) => (b.kind = "triples")), /unknown kind "triples"/],
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
    ["baseline target out of range", baseWith((b) => (b.targets = le32([0, 3]))), /target index 3 out of range/],
    ["baseline targets not binary", baseWith((b) => (b.targets = [0])), /targets must be binary/],
  );
  for (const [what, data, pattern] of cases) expectProtocolError(data, pattern, what);
  // The valid bodies really decode: the failures above come from the one field changed.
  decodeTileMessage(packr.pack(body()));
  decodeTileMessage(packr.pack(base));
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
    v: field(1),
    job: field("job1"),
    tile: field(TILE),
    kind: fc.oneof(fc.constant("pairs"), fc.constant("baseline"), anyValue, fc.constant(undefined)),
    ids: field(le32([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], true)),
    offsets: field(le32([0, 3, 5, 6, 10, 10, 11])),
    columns: field(le32([1, 2])),
    rows: field(le32([0, 2])),
    targets: field(le32([0])),
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
