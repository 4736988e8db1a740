import { Growable } from "./growable.js";

/**
 * Strings interned in one UTF-8 byte array with an open-addressing hash index: a million sample ids
 * cost their bytes plus about 16 bytes each, instead of a million string objects and a Map.
 */
export type StringPool = {
  readonly count: number;
  /** String i, decoded on demand. */
  get(i: number): string;
  /** Index of `s`, or -1. */
  indexOf(s: string): number;
  /** The backing arrays, for the on-disk corpus. */
  readonly bytes: Uint8Array;
  readonly offsets: Uint32Array;
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** FNV-1a over UTF-16 code units: the same for a string whether it is being added or looked up. */
function hashOf(s: string): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return (h ^ (h >>> 12)) >>> 0;
}

class PoolIndex {
  /** Slot -> string index + 1 (0 = empty). */
  private table: Uint32Array;
  private mask: number;

  constructor(capacity: number) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.table = new Uint32Array(size);
    this.mask = size - 1;
  }

  find(s: string, get: (i: number) => string): number {
    const h = hashOf(s);
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      const e = this.table[slot];
      if (e === 0) return -1;
      if (get(e - 1) === s) return e - 1;
    }
  }

  insert(i: number, h: number): void {
    let slot = h & this.mask;
    while (this.table[slot] !== 0) slot = (slot + 1) & this.mask;
    this.table[slot] = i + 1;
  }

  get size(): number {
    return this.table.length;
  }
}

export class StringPoolBuilder {
  private readonly bytes = new Growable(Uint8Array, 1 << 16);
  private readonly offsets = new Growable(Uint32Array, 1 << 12);
  private readonly hashes = new Growable(Uint32Array, 1 << 12);
  private index = new PoolIndex(1 << 12);
  private scratch = new Uint8Array(256);

  constructor() {
    this.offsets.push(0);
  }

  get count(): number {
    return this.hashes.length;
  }

  get(i: number): string {
    const b = this.bytes.peek();
    return decoder.decode(b.subarray(this.offsets.at(i), this.offsets.at(i + 1)));
  }

  indexOf(s: string): number {
    return this.index.find(s, (i) => this.get(i));
  }

  /** Appends `s` (the caller has checked it is new, or wants duplicates) and returns its index. */
  add(s: string): number {
    const i = this.count;
    if (this.scratch.length < s.length * 3) this.scratch = new Uint8Array(s.length * 3);
    const { written } = encoder.encodeInto(s, this.scratch);
    this.bytes.append(this.scratch.subarray(0, written));
    this.offsets.push(this.bytes.length);
    const h = hashOf(s);
    this.hashes.push(h);
    if ((i + 1) * 2 > this.index.size) this.rehash(i + 1);
    this.index.insert(i, h);
    return i;
  }

  private rehash(count: number): void {
    this.index = new PoolIndex(count * 2);
    const hashes = this.hashes.peek();
    for (let i = 0; i < count - 1; i++) this.index.insert(i, hashes[i]);
  }

  finish(): StringPool {
    return poolFrom(this.bytes.finish(), this.offsets.finish(), this.hashes.finish());
  }
}

/** A pool over existing arrays (read back from disk); the hash index is rebuilt. */
export function poolFrom(bytes: Uint8Array, offsets: Uint32Array, hashes?: Uint32Array): StringPool {
  const count = offsets.length - 1;
  const get = (i: number) => decoder.decode(bytes.subarray(offsets[i], offsets[i + 1]));
  const index = new PoolIndex(Math.max(count, 1));
  for (let i = 0; i < count; i++) index.insert(i, hashes ? hashes[i] : hashOf(get(i)));
  return { count, get, indexOf: (s) => index.find(s, get), bytes, offsets };
}
