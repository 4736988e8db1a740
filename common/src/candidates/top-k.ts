/**
 * Per-query top-K lists: row r holds up to k (score, id) pairs, best first (higher score; ties
 * to the lower id), unused slots at the end with id EMPTY. Lists from different corpus blocks
 * merge exactly (the top k of a union is the top k of the parts' top k), in any order of merging.
 */
export const EMPTY = 0xffffffff;

export type TopKLists = { rows: number; k: number; scores: Float32Array; ids: Uint32Array };

export function emptyTopK(rows: number, k: number): TopKLists {
  return { rows, k, scores: new Float32Array(rows * k).fill(-Infinity), ids: new Uint32Array(rows * k).fill(EMPTY) };
}

/** a before b: higher score, then lower id (EMPTY slots last). */
function before(sa: number, ia: number, sb: number, ib: number): boolean {
  if (ia === EMPTY) return false;
  if (ib === EMPTY) return true;
  return sa > sb || (sa === sb && ia < ib);
}

/** Merges `b` into `into` row by row (rows aligned); `into` is updated in place. */
export function mergeTopK(into: TopKLists, b: TopKLists): void {
  if (into.rows !== b.rows) throw new Error(`top-k lists of ${into.rows} and ${b.rows} rows cannot merge`);
  const k = into.k;
  const s = new Float32Array(k);
  const ids = new Uint32Array(k);
  for (let r = 0; r < into.rows; r++) {
    let x = r * k;
    const xEnd = x + k;
    let y = r * b.k;
    const yEnd = y + b.k;
    let t = 0;
    while (t < k) {
      const aOk = x < xEnd && into.ids[x] !== EMPTY;
      const bOk = y < yEnd && b.ids[y] !== EMPTY;
      if (!aOk && !bOk) break;
      let score: number;
      let id: number;
      if (aOk && (!bOk || !before(b.scores[y], b.ids[y], into.scores[x], into.ids[x]))) {
        score = into.scores[x];
        id = into.ids[x++];
      } else {
        score = b.scores[y];
        id = b.ids[y++];
      }
      // The same corpus row met in both lists (equal score, so adjacent) is kept once.
      if (t > 0 && id === ids[t - 1]) continue;
      s[t] = score;
      ids[t++] = id;
    }
    s.fill(-Infinity, t);
    ids.fill(EMPTY, t);
    into.scores.set(s, r * k);
    into.ids.set(ids, r * k);
  }
}

/** The ids of row r, best first, without empty slots. */
export function rowIds(lists: TopKLists, r: number): Uint32Array {
  const row = lists.ids.subarray(r * lists.k, (r + 1) * lists.k);
  const end = row.indexOf(EMPTY);
  return end < 0 ? row : row.subarray(0, end);
}
