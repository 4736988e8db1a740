import { createHash } from "node:crypto";
import { rename, rm } from "node:fs/promises";
import { open } from "node:fs/promises";
import { InputError } from "../errors.js";
import type { CompactCorpus } from "./compact-corpus.js";
import type { RecordIndex } from "./record-index.js";
import { poolFrom } from "./string-pool.js";

/**
 * The compact corpus on disk, one file (issue 8 item 4: workers fetch it once from the object
 * store and tiles carry sample indices). Layout, all little-endian:
 *
 *   "DELIFT-CORPUS/1\n" (16 bytes) | header length (u32) | header JSON | padding to 8 |
 *   sections, each at an 8-byte aligned offset the header gives
 *
 * Sections: tokens (u16 or u32), offsets (u32, 2n+1), sample ids (UTF-8 bytes + u32 offsets),
 * source codes (u32), and the record index (lines, ordinals, byte offsets f64, byte lengths).
 * The file is named by its SHA-256 (`writeCorpusFile` returns it), so a copy is checked by
 * hashing it; `readCorpusFile` checks the layout whatever the source of the file.
 */
export const CORPUS_MAGIC = "DELIFT-CORPUS/1\n";

type SectionName = "tokens" | "offsets" | "idBytes" | "idOffsets" | "sourceCodes" | "lines" | "ordinals" | "byteOffsets" | "byteLengths";
type DType = "u8" | "u16" | "u32" | "f64";
type Section = { name: SectionName; dtype: DType; offset: number; bytes: number };

type CorpusFileHeader = {
  format: "delift-corpus/1";
  count: number;
  sourceNames: string[];
  records: Omit<RecordIndex, "lines" | "ordinals" | "byteOffsets" | "byteLengths"> | null;
  sections: Section[];
};

const WIDTH: Record<DType, number> = { u8: 1, u16: 2, u32: 4, f64: 8 };
const CTOR = { u8: Uint8Array, u16: Uint16Array, u32: Uint32Array, f64: Float64Array } as const;

export type CorpusFileInfo = { path: string; sha256: string; bytes: number };

/** Writes the corpus (and its record index, when given) to `path` atomically; returns its SHA-256. */
export async function writeCorpusFile(path: string, corpus: CompactCorpus, records: RecordIndex | null): Promise<CorpusFileInfo> {
  const arrays: [SectionName, DType, ArrayBufferView][] = [
    ["tokens", corpus.ids instanceof Uint16Array ? "u16" : "u32", corpus.ids],
    ["offsets", "u32", corpus.offsets],
    ["idBytes", "u8", corpus.sampleIds.bytes],
    ["idOffsets", "u32", corpus.sampleIds.offsets],
    ["sourceCodes", "u32", corpus.sources.codes],
  ];
  if (records) {
    arrays.push(["lines", "u32", records.lines], ["ordinals", "u32", records.ordinals]);
    if (records.byteOffsets && records.byteLengths) arrays.push(["byteOffsets", "f64", records.byteOffsets], ["byteLengths", "u32", records.byteLengths]);
  }
  const recordFacts = records
    ? { file: records.file, format: records.format, gzip: records.gzip, fileBytes: records.fileBytes, mtimeMs: records.mtimeMs, sha256: records.sha256, recordCount: records.recordCount }
    : null;
  // The header holds the section offsets, which depend on the header's length: lay out until it fits.
  let sections: Section[] = [];
  let headerBytes = new Uint8Array(0);
  for (let room = 256; ; room *= 2) {
    let at = align8(16 + 4 + room);
    sections = arrays.map(([name, dtype, a]) => {
      const s = { name, dtype, offset: at, bytes: a.byteLength };
      at = align8(at + a.byteLength);
      return s;
    });
    const header: CorpusFileHeader = { format: "delift-corpus/1", count: corpus.count, sourceNames: corpus.sources.names, records: recordFacts, sections };
    const json = new TextEncoder().encode(JSON.stringify(header));
    if (json.length > room) continue;
    headerBytes = new Uint8Array(room).fill(0x20);
    headerBytes.set(json);
    break;
  }
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, "w");
  const hash = createHash("sha256");
  let written = 0;
  const put = async (bytes: Uint8Array) => {
    hash.update(bytes);
    await fh.write(bytes, 0, bytes.length, written);
    written += bytes.length;
  };
  try {
    const prefix = new Uint8Array(20);
    prefix.set(new TextEncoder().encode(CORPUS_MAGIC), 0);
    new DataView(prefix.buffer).setUint32(16, headerBytes.length, true);
    await put(prefix);
    await put(headerBytes);
    for (let k = 0; k < arrays.length; k++) {
      await put(new Uint8Array(sections[k].offset - written));
      const a = arrays[k][2];
      // In slices: a write of more than 2 GiB at once is refused.
      for (let o = 0; o < a.byteLength; o += 1 << 30) await put(new Uint8Array(a.buffer, a.byteOffset + o, Math.min(1 << 30, a.byteLength - o)));
    }
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  return { path, sha256: hash.digest("hex"), bytes: written };
}

export type CorpusFile = { corpus: CompactCorpus; records: RecordIndex | null; sha256: string | null };

/**
 * Reads a corpus file into typed arrays (each read straight into its final array: one copy).
 * `expectSha256`: the file must hash to it (a copy fetched from the object store). Anything that
 * does not hold together is an InputError naming the file.
 */
export async function readCorpusFile(path: string, options: { expectSha256?: string } = {}): Promise<CorpusFile> {
  const bad = (what: string) => new InputError({ file: path }, `not a delift corpus file: ${what}`);
  let fh;
  try {
    fh = await open(path, "r");
  } catch (err) {
    throw new InputError({ file: path }, `cannot open: ${(err as Error).message}`, { cause: err });
  }
  try {
    const size = (await fh.stat()).size;
    const hash = options.expectSha256 ? createHash("sha256") : null;
    let hashed = 0;
    const readAt = async (target: Uint8Array, position: number) => {
      if (position + target.length > size) throw bad("a section runs past the end of the file");
      for (let got = 0; got < target.length; ) {
        const { bytesRead } = await fh.read(target, got, Math.min(target.length - got, 1 << 30), position + got);
        if (bytesRead === 0) throw bad("truncated");
        got += bytesRead;
      }
      // Sections are read in file order, so the hash can run along (the gaps are zero padding, hashed too).
      if (hash) {
        if (position > hashed) {
          hash.update(new Uint8Array(position - hashed));
          hashed = position;
        }
        if (position === hashed) {
          hash.update(target);
          hashed += target.length;
        }
      }
    };
    const prefix = new Uint8Array(20);
    await readAt(prefix, 0);
    if (new TextDecoder().decode(prefix.subarray(0, 16)) !== CORPUS_MAGIC) throw bad("the magic string is missing");
    const headerLength = new DataView(prefix.buffer).getUint32(16, true);
    if (headerLength > 64 << 20) throw bad("header too long");
    const headerBytes = new Uint8Array(headerLength);
    await readAt(headerBytes, 20);
    let header: CorpusFileHeader;
    try {
      header = JSON.parse(new TextDecoder().decode(headerBytes)) as CorpusFileHeader;
    } catch {
      throw bad("the header is not JSON");
    }
    if (header.format !== "delift-corpus/1" || !Number.isSafeInteger(header.count) || header.count < 0 || !Array.isArray(header.sections) || !Array.isArray(header.sourceNames)) {
      throw bad("unknown header");
    }
    const arrays = new Map<SectionName, ArrayBufferView>();
    const sorted = [...header.sections].sort((a, b) => a.offset - b.offset);
    for (const s of sorted) {
      const width = WIDTH[s.dtype];
      if (!width || !Number.isSafeInteger(s.offset) || !Number.isSafeInteger(s.bytes) || s.offset % 8 !== 0 || s.bytes % width !== 0 || s.bytes < 0) throw bad(`section ${s.name} is malformed`);
      const array = new CTOR[s.dtype](s.bytes / width);
      await readAt(new Uint8Array(array.buffer), s.offset);
      arrays.set(s.name, array);
    }
    if (hash) {
      if (hashed < size) throw bad("trailing bytes after the last section");
      const got = hash.digest("hex");
      if (got !== options.expectSha256) throw new InputError({ file: path }, `corpus file hashes to ${got.slice(0, 12)}, expected ${options.expectSha256!.slice(0, 12)}: a corrupt or partial copy`);
    }
    const n = header.count;
    const need = <T extends ArrayBufferView>(name: SectionName, length: number | null): T => {
      const a = arrays.get(name) as (T & { length: number }) | undefined;
      if (!a) throw bad(`section ${name} is missing`);
      if (length !== null && a.length !== length) throw bad(`section ${name} has ${a.length} entries, expected ${length}`);
      return a;
    };
    const tokens = need<Uint16Array | Uint32Array>("tokens", null);
    if (!(tokens instanceof Uint16Array || tokens instanceof Uint32Array)) throw bad("tokens are neither u16 nor u32");
    const offsets = need<Uint32Array>("offsets", 2 * n + 1);
    checkMonotone(offsets, tokens.length, () => bad("token offsets are not increasing within the tokens"));
    const idBytes = need<Uint8Array>("idBytes", null);
    const idOffsets = need<Uint32Array>("idOffsets", n + 1);
    checkMonotone(idOffsets, idBytes.length, () => bad("id offsets are not increasing within the id bytes"));
    const codes = need<Uint32Array>("sourceCodes", n);
    for (let i = 0; i < n; i++) if (codes[i] >= Math.max(1, header.sourceNames.length)) throw bad(`source code ${codes[i]} of sample ${i} is not in the table`);
    const corpus: CompactCorpus = { count: n, ids: tokens, offsets, sampleIds: poolFrom(idBytes, idOffsets), sources: { names: header.sourceNames, codes } };
    let records: RecordIndex | null = null;
    if (header.records) {
      const jsonl = header.records.format === "jsonl";
      records = {
        ...header.records,
        lines: need<Uint32Array>("lines", n),
        ordinals: need<Uint32Array>("ordinals", n),
        byteOffsets: jsonl ? need<Float64Array>("byteOffsets", n) : null,
        byteLengths: jsonl ? need<Uint32Array>("byteLengths", n) : null,
      };
    }
    return { corpus, records, sha256: hash ? options.expectSha256! : null };
  } finally {
    await fh.close();
  }
}

function checkMonotone(offsets: Uint32Array, end: number, fail: () => Error): void {
  if (offsets[0] !== 0 || offsets[offsets.length - 1] !== end) throw fail();
  for (let k = 1; k < offsets.length; k++) if (offsets[k] < offsets[k - 1]) throw fail();
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}
