/**
 * The coordinator's max-heap over one round's candidates: (bound, column) ordered by bound
 * descending, then column ascending (the optimisers' tie rule), each entry carrying an opaque
 * reference to its candidate. Typed arrays, no objects per entry.
 */
export class CandidateHeap {
  private readonly bound: Float64Array;
  private readonly column: Uint32Array;
  private readonly ref: Uint32Array;
  private size = 0;

  constructor(capacity: number) {
    this.bound = new Float64Array(capacity);
    this.column = new Uint32Array(capacity);
    this.ref = new Uint32Array(capacity);
  }

  get length(): number {
    return this.size;
  }

  /** Adds entries without ordering them; call heapify() before reading. */
  pushUnordered(bound: number, column: number, ref: number): void {
    const i = this.size++;
    this.bound[i] = bound;
    this.column[i] = column;
    this.ref[i] = ref;
  }

  heapify(): void {
    for (let i = (this.size >>> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  topBound(): number {
    return this.bound[0];
  }

  topColumn(): number {
    return this.column[0];
  }

  topRef(): number {
    return this.ref[0];
  }

  /** Replaces the top's bound with one no larger and restores the order. */
  lowerTop(bound: number): void {
    this.bound[0] = bound;
    this.siftDown(0);
  }

  removeTop(): void {
    const last = --this.size;
    this.bound[0] = this.bound[last];
    this.column[0] = this.column[last];
    this.ref[0] = this.ref[last];
    if (last > 0) this.siftDown(0);
  }

  /** The largest bound left (0 when empty). */
  maxBound(): number {
    return this.size === 0 ? 0 : this.bound[0];
  }

  private siftDown(start: number): void {
    const { bound, column, ref, size } = this;
    const b = bound[start];
    const c = column[start];
    const r = ref[start];
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= size) break;
      const right = left + 1;
      const child = right < size && (bound[right] > bound[left] || (bound[right] === bound[left] && column[right] < column[left])) ? right : left;
      const cb = bound[child];
      if (cb < b || (cb === b && column[child] > c)) break;
      bound[i] = cb;
      column[i] = column[child];
      ref[i] = ref[child];
      i = child;
    }
    bound[i] = b;
    column[i] = c;
    ref[i] = r;
  }
}

/** Whether (boundA, columnA) comes at or before (boundB, columnB) in the heap's order. */
export function atOrBefore(boundA: number, columnA: number, boundB: number, columnB: number): boolean {
  return boundA > boundB || (boundA === boundB && columnA <= columnB);
}
