/**
 * A typed array that grows in place: backed by a resizable ArrayBuffer (address space reserved,
 * memory committed as it grows), so appending a million samples never copies the data and the
 * final array is exactly as long as its contents: one copy, no doubling slack. Falls back to
 * copying growth past the reservation (4 GiB, V8's limit for one resizable buffer).
 */
type TypedCtor<T> = { new (buffer: ArrayBuffer, byteOffset?: number, length?: number): T; BYTES_PER_ELEMENT: number };
type Typed = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

const MAX_RESERVE = 2 ** 32;

export class Growable<T extends Typed> {
  private buffer: ArrayBuffer;
  private view: T;
  private used = 0;

  constructor(private readonly ctor: TypedCtor<T>, initial = 1024, reserveBytes = MAX_RESERVE) {
    const max = Math.max(initial * ctor.BYTES_PER_ELEMENT, Math.min(reserveBytes, MAX_RESERVE));
    this.buffer = new (ArrayBuffer as unknown as { new (n: number, o: { maxByteLength: number }): ArrayBuffer })(initial * ctor.BYTES_PER_ELEMENT, { maxByteLength: max });
    this.view = new ctor(this.buffer);
  }

  get length(): number {
    return this.used;
  }

  push(value: number): void {
    if (this.used === this.view.length) this.reserve(this.used + 1);
    this.view[this.used++] = value;
  }

  append(values: ArrayLike<number>): void {
    const need = this.used + values.length;
    if (need > this.view.length) this.reserve(need);
    (this.view as unknown as { set(a: ArrayLike<number>, o: number): void }).set(values, this.used);
    this.used = need;
  }

  at(i: number): number {
    return this.view[i];
  }

  set(i: number, value: number): void {
    this.view[i] = value;
  }

  /** The contents so far (a view: valid until the next append). */
  peek(): T {
    return this.view.subarray(0, this.used) as T;
  }

  /** The final array, exactly `length` long; the builder must not be used afterwards. */
  finish(): T {
    const b = this.buffer as ArrayBuffer & { resizable?: boolean; resize?(n: number): void };
    if (b.resizable && b.resize) {
      b.resize(this.used * this.ctor.BYTES_PER_ELEMENT);
      return new this.ctor(this.buffer, 0, this.used);
    }
    return this.view.slice(0, this.used) as T;
  }

  private reserve(need: number): void {
    const bytesPer = this.ctor.BYTES_PER_ELEMENT;
    const want = Math.max(need, Math.ceil(this.view.length * 1.5), 1024);
    const b = this.buffer as ArrayBuffer & { resizable?: boolean; maxByteLength?: number; resize?(n: number): void };
    if (b.resizable && b.resize && b.maxByteLength !== undefined && need * bytesPer <= b.maxByteLength) {
      b.resize(Math.min(want * bytesPer, b.maxByteLength));
      this.view = new this.ctor(this.buffer);
      return;
    }
    const next = new ArrayBuffer(want * bytesPer);
    const view = new this.ctor(next);
    (view as unknown as { set(a: T): void }).set(this.view.subarray(0, this.used) as T);
    this.buffer = next;
    this.view = view;
  }
}
