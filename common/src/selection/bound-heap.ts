/**
 * Binary max-heap of (bound, column) pairs in typed arrays, ordered by bound descending and
 * then column ascending, so the top is the lowest-index column among those with the largest
 * bound. Only the operations lazy greedy needs: read the top, lower its bound, remove it.
 */
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
    for (let i = (n >>> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  get length(): number {
    return this.size;
  }

  topColumn(): number {
    return this.column[0];
  }

  topBound(): number {
    return this.bound[0];
  }

  /** The column that would be on top if the top were removed (the top itself if it is alone). */
  runnerUpColumn(): number {
    if (this.size < 2) return this.column[0];
    if (this.size === 2 || this.before(1, 2)) return this.column[1];
    return this.column[2];
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

  /** Whether the entry at heap position a comes before the one at b. */
  private before(a: number, b: number): boolean {
    const { bound, column } = this;
    return bound[a] > bound[b] || (bound[a] === bound[b] && column[a] < column[b]);
  }

  private siftDown(start: number): void {
    const { bound, column, size } = this;
    const b = bound[start];
    const c = column[start];
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= size) break;
      const right = left + 1;
      const child = right < size && this.before(right, left) ? right : left;
      const cb = bound[child];
      if (cb < b || (cb === b && column[child] > c)) break;
      bound[i] = cb;
      column[i] = column[child];
      i = child;
    }
    bound[i] = b;
    column[i] = c;
  }
}
