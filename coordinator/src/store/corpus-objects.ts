import { mkdir, readFile, stat } from "node:fs/promises";
import { atomicWrite } from "../runtime/job-files.js";
import { join } from "node:path";
import {
  type BlobStore,
  chunkRanges,
  CORPUS_MANIFEST_FORMAT,
  type CorpusChunkEntry,
  corpusObjectName,
  type CorpusRef,
  DEFAULT_CHUNK_BYTES,
  encodeCorpusChunk,
  encodeCorpusManifest,
  sha256Hex,
  tokenWidth,
  type TokenizedCorpus,
} from "../../../common/src/mod.js";

/** A corpus object on the coordinator's disk, to be put into the object store under `name`. */
export type CorpusObjectFile = { name: string; path: string; bytes: number };

/** The job's corpus as objects: what tile messages name, and the files behind it. */
export type CorpusObjects = { ref: CorpusRef; files: CorpusObjectFile[]; chunks: number; bytes: number; rawBytes: number; tokenBytes: 2 | 4 };

/**
 * Writes the tokenized corpus as content-keyed chunk files and a manifest into `dir` (issue 8
 * item 4), one chunk in memory at a time. Files already there under their digest are kept when
 * they still hash to it (a resumed or repeated job writes nothing new); each new one is written
 * atomically. The object store is never trusted beyond that: workers check every object again.
 */
export async function writeCorpusObjects(corpus: TokenizedCorpus, dir: string, chunkBytes = DEFAULT_CHUNK_BYTES): Promise<CorpusObjects> {
  await mkdir(dir, { recursive: true });
  const width = tokenWidth(corpus.ids);
  const chunks: CorpusChunkEntry[] = [];
  const files: CorpusObjectFile[] = [];
  let bytes = 0;
  let rawTotal = 0;
  for (const [start, end] of chunkRanges(corpus, width, chunkBytes)) {
    const { stored, rawBytes } = encodeCorpusChunk(corpus, start, end, width);
    const sha256 = sha256Hex(stored);
    chunks.push({ start, count: end - start, sha256, bytes: stored.byteLength, rawBytes });
    files.push(await keep(dir, sha256, stored));
    bytes += stored.byteLength;
    rawTotal += rawBytes;
  }
  const manifest = encodeCorpusManifest({ format: CORPUS_MANIFEST_FORMAT, count: corpus.count, tokenBytes: width, tokens: corpus.ids.length, chunks });
  const digest = sha256Hex(manifest);
  files.push(await keep(dir, digest, manifest));
  return { ref: { digest, count: corpus.count }, files, chunks: chunks.length, bytes: bytes + manifest.byteLength, rawBytes: rawTotal, tokenBytes: width };
}

/** Puts the corpus objects the object store does not hold yet; returns the bytes sent. */
export async function publishCorpusObjects(files: CorpusObjectFile[], blobs: BlobStore, signal?: AbortSignal): Promise<number> {
  let sent = 0;
  for (const f of files) {
    signal?.throwIfAborted();
    if (await blobs.has(f.name)) continue;
    await blobs.putFile(f.name, f.path);
    sent += f.bytes;
  }
  return sent;
}

async function keep(dir: string, sha256: string, data: Uint8Array): Promise<CorpusObjectFile> {
  const path = join(dir, sha256);
  const file = { name: corpusObjectName(sha256), path, bytes: data.byteLength };
  // A file already there is kept only if it still holds these bytes (a damaged one is rewritten).
  const existing = await stat(path).catch(() => null);
  if (existing && existing.size === data.byteLength && (await readFile(path).then((b) => sha256Hex(b) === sha256, () => false))) return file;
  await atomicWrite(path, data);
  return file;
}
