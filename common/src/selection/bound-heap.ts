/**
 * 4-ary max-heap of (bound, column) pairs in typed arrays, ordered by bound descending and
 * then column ascending, so the top is the lowest-index column among those with the largest
 * bound. Only the operations lazy greedy needs: read the top, lower its bound, remove it.
 */
/** Four children per node: half the levels of a binary heap, and siblings share a cache line. */
const ARITY = 4;

export class BoundHeap {
  private readonly bound: Float64Array;
  private readonly column: Uint32Array;
  private size: number;

  /** Takes ownership of bounds[j] for columns 0..n-1 and heapifies in O(n). */
  constructor(bounds: Float64Array) {
    const n = bounds.length;
    this.bound = bounds;
    this.column = new Uint32Array(n);
    for (let j = 0; j < n; j++) this.column[j] = j;
    this.size = n;
    for (let i = Math.floor((n - 2) / ARITY); i >= 0; i--) this.siftDown(i);
  }

  get length(): number {
    return this.size;
  }

  topColumn(): number {
    return this.column[0];
  }

  /** The column that would be on top if the top were removed (the top itself if it is alone). */
  runnerUpColumn(): number {
    const { bound, column } = this;
    const end = 1 + ARITY < this.size ? 1 + ARITY : this.size;
    let best = 0;
    for (let q = 1; q < end; q++) {
      if (best === 0 || bound[q] > bound[best] || (bound[q] === bound[best] && column[q] < column[best])) best = q;
    }
    return column[best];
  }

  topBound(): number {
    return this.bound[0];
  }

  /** Replaces the top's bound with a value no larger than before and restores the order. */
  lowerTop(bound: number): void {
    this.bound[0] = bound;
    this.siftDown(0);
  }

  removeTop(): void {
    const last = --this.size;
    this.bound[0] = this.bound[last];
    this.column[0] = this.column[last];
    this.siftDown(0);
  }

  private siftDown(start: number): void {
    const { bound, column, size } = this;
    const b = bound[start];
    const c = column[start];
    let i = start;
    for (;;) {
      const first = ARITY * i + 1;
      if (first >= size) break;
      const end = first + ARITY < size ? first + ARITY : size;
      let child = first;
      let cb = bound[first];
      let cc = column[first];
      for (let q = first + 1; q < end; q++) {
        const qb = bound[q];
        if (qb > cb || (qb === cb && column[q] < cc)) {
          child = q;
          cb = qb;
          cc = column[q];
        }
      }
      if (cb < b || (cb === b && cc > c)) break;
      bound[i] = cb;
      column[i] = cc;
      i = child;
    }
    bound[i] = b;
    column[i] = c;
  }
}
