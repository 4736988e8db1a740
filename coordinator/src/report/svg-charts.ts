/** Small inline-SVG charts for the HTML report: no scripts, no external assets. */

export type Series = { label: string; color: string; points: [number, number][] };

export type ChartOptions = { width?: number; height?: number; xLabel: string; yLabel: string; yMin?: number };

const W = 640;
const H = 280;
const PAD = { left: 64, right: 16, top: 16, bottom: 44 };

export function lineChart(series: Series[], o: ChartOptions): string {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return "<p>(no data)</p>";
  const [x0, x1] = extent(all.map((p) => p[0]));
  const [yLo, y1] = extent(all.map((p) => p[1]));
  const y0 = o.yMin ?? yLo;
  const frame = axes(x0, x1, y0, y1, o);
  const paths = series
    .map((s) => {
      const d = s.points.map((p, k) => `${k ? "L" : "M"}${sx(p[0], x0, x1).toFixed(1)},${sy(p[1], y0, y1).toFixed(1)}`).join("");
      return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"/>`;
    })
    .join("");
  const legend = series
    .map((s, k) => `<text x="${PAD.left + 10}" y="${PAD.top + 14 + 16 * k}" fill="${s.color}" font-size="12">${escapeHtml(s.label)}</text>`)
    .join("");
  return svg(frame + paths + legend);
}

export type Bar = { label: string; value: number; color?: string };

export function histogram(edges: number[], counts: number[], o: ChartOptions): string {
  if (counts.length === 0) return "<p>(no data)</p>";
  const x0 = edges[0];
  const x1 = edges[edges.length - 1];
  const y1 = Math.max(1, ...counts);
  const frame = axes(x0, x1, 0, y1, o);
  const bars = counts
    .map((c, k) => {
      const xa = sx(edges[k], x0, x1);
      const xb = sx(edges[k + 1], x0, x1);
      const y = sy(c, 0, y1);
      return `<rect x="${xa.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(0.5, xb - xa - 0.5).toFixed(1)}" height="${(H - PAD.bottom - y).toFixed(1)}" fill="#4e79a7"><title>${fmt(edges[k])}..${fmt(edges[k + 1])}: ${c}</title></rect>`;
    })
    .join("");
  return svg(frame + bars);
}

/** Horizontal grouped bars: per category, share of the data set and share of the selection. */
export function groupedBars(categories: { label: string; a: number; b: number }[], labels: [string, string]): string {
  const rowH = 26;
  const height = PAD.top + rowH * categories.length + 30;
  const left = 170;
  const width = W - left - 110;
  const max = Math.max(1e-9, ...categories.flatMap((c) => [c.a, c.b]));
  const rows = categories
    .map((c, k) => {
      const y = PAD.top + rowH * k;
      const wa = (c.a / max) * width;
      const wb = (c.b / max) * width;
      return (
        `<text x="${left - 6}" y="${y + 15}" text-anchor="end" font-size="12">${escapeHtml(c.label)}</text>` +
        `<rect x="${left}" y="${y + 2}" width="${wa.toFixed(1)}" height="10" fill="#bab0ac"/>` +
        `<rect x="${left}" y="${y + 12}" width="${wb.toFixed(1)}" height="10" fill="#e15759"/>` +
        `<text x="${left + Math.max(wa, wb) + 4}" y="${y + 15}" font-size="11">${(100 * c.a).toFixed(1)}% / ${(100 * c.b).toFixed(1)}%</text>`
      );
    })
    .join("");
  const legend =
    `<rect x="${left}" y="${height - 18}" width="10" height="10" fill="#bab0ac"/><text x="${left + 14}" y="${height - 9}" font-size="12">${escapeHtml(labels[0])}</text>` +
    `<rect x="${left + 160}" y="${height - 18}" width="10" height="10" fill="#e15759"/><text x="${left + 174}" y="${height - 9}" font-size="12">${escapeHtml(labels[1])}</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${height}" width="${W}" height="${height}">${rows}${legend}</svg>`;
}

/** Round tick values (steps of 1, 2 or 5 times a power of ten) inside [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / (count - 1);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function axes(x0: number, x1: number, y0: number, y1: number, o: ChartOptions): string {
  const ticks = (lo: number, hi: number) => niceTicks(lo, hi);
  const xt = ticks(x0, x1)
    .map((v) => `<text x="${sx(v, x0, x1).toFixed(1)}" y="${H - PAD.bottom + 16}" text-anchor="middle" font-size="11">${fmt(v)}</text>`)
    .join("");
  const yt = ticks(y0, y1)
    .map(
      (v) =>
        `<text x="${PAD.left - 6}" y="${(sy(v, y0, y1) + 4).toFixed(1)}" text-anchor="end" font-size="11">${fmt(v)}</text>` +
        `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${sy(v, y0, y1).toFixed(1)}" y2="${sy(v, y0, y1).toFixed(1)}" stroke="#eee"/>`,
    )
    .join("");
  return (
    `<line x1="${PAD.left}" y1="${H - PAD.bottom}" x2="${W - PAD.right}" y2="${H - PAD.bottom}" stroke="#333"/>` +
    `<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${H - PAD.bottom}" stroke="#333"/>` +
    xt +
    yt +
    `<text x="${(PAD.left + W - PAD.right) / 2}" y="${H - 6}" text-anchor="middle" font-size="12">${escapeHtml(o.xLabel)}</text>` +
    `<text x="14" y="${(PAD.top + H - PAD.bottom) / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${(PAD.top + H - PAD.bottom) / 2})">${escapeHtml(o.yLabel)}</text>`
  );
}

function svg(body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif">${body}</svg>`;
}

function sx(v: number, lo: number, hi: number): number {
  return PAD.left + ((v - lo) / (hi - lo || 1)) * (W - PAD.left - PAD.right);
}

function sy(v: number, lo: number, hi: number): number {
  return H - PAD.bottom - ((v - lo) / (hi - lo || 1)) * (H - PAD.top - PAD.bottom);
}

function extent(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo === hi ? [lo - 1, hi + 1] : [lo, hi];
}

export function fmt(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
  return Number.isInteger(v) ? String(v) : v.toFixed(a >= 100 ? 0 : a >= 1 ? 2 : 3);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}
