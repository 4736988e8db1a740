import { escapeHtml, fmt, groupedBars, histogram, lineChart } from "./svg-charts.js";
import type { KernelSection, SelectionReport } from "./types.js";

/** A page a person reads: settings, the objective curve, gains, the kernel, the selection's make-up. */
export function renderReportHtml(r: SelectionReport): string {
  const s = r.settings;
  const rows: [string, string][] = [
    ["stage / objective", `${s.stage} / ${s.objective.toUpperCase()}`],
    ["kernel", s.kernel === "se" ? "DELIFT (SE): sentence-embedding cosine" : "DELIFT utility (in-context improvement)"],
    ["budget", `${s.budget} → k = ${s.k} of ${r.data.samples}`],
    ["optimizer", optimizerText(r)],
    ["scaling", s.scaling],
    ["model", `${s.model.name ?? s.model.dir} (${s.model.hash.slice(0, 12)})`],
    ["data", `${r.data.file}: ${r.data.samples} samples${r.data.skipped ? `, ${r.data.skipped} skipped` : ""}`],
  ];
  if (r.data.target) rows.push(["target set Q", `${r.data.target.file}: ${r.data.target.samples} samples (η = ${s.eta})`]);
  if (r.data.existing) rows.push(["existing set E", `${r.data.existing.file}: ${r.data.existing.samples} samples (ν = ${s.nu})`]);
  const res = r.result;
  const summary: [string, string][] = [
    ["f(A)", fmt(res.value)],
    ["f(A) / f(V)", res.valueOfAll > 0 ? `${((100 * res.value) / res.valueOfAll).toFixed(2)}%` : "—"],
    ["ratio to lazy greedy", res.ratioToLazy === null ? "not computed" : res.ratioToLazy.toFixed(4)],
    ["gain evaluations", String(res.evaluations)],
    ...(res.distributed
      ? ([["distributed", `${res.distributed.shards} shards on ${res.distributed.hosts} hosts, ${res.distributed.rounds} rounds, ${fmtBytes(res.distributed.bytesSent + res.distributed.bytesReceived)} moved, ${res.distributed.reassignments} shards reassigned`]] as [string, string][])
      : []),
    ["time", `load ${r.timings.loadSeconds.toFixed(1)} s, kernel ${r.timings.kernelSeconds.toFixed(1)} s, selection ${r.timings.selectionSeconds.toFixed(2)} s`],
  ];
  const curve = lineChart([{ label: "f(first k picks)", color: "#4e79a7", points: res.curve }], { xLabel: "k (picks)", yLabel: "f(A)", yMin: 0 });
  const gains = lineChart([{ label: "marginal gain", color: "#e15759", points: res.gains }], { xLabel: "rank", yLabel: "gain", yMin: 0 });
  const total = r.composition.reduce((n, c) => n + c.total, 0) || 1;
  const picked = r.composition.reduce((n, c) => n + c.selected, 0) || 1;
  const makeUp = groupedBars(
    r.composition.map((c) => ({ label: c.source, a: c.total / total, b: c.selected / picked })),
    ["share of data", "share of selection"],
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>delift selection report</title>
<style>
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#f6f6f6}h2{margin-top:1.6em}.note{color:#666;font-size:.9em}code{background:#f3f3f3;padding:0 .2em}
</style></head><body>
<h1>delift selection report</h1>
<p class="note">Created ${escapeHtml(r.createdAt)}. The selected samples are in <code>selected.jsonl</code>; every figure here is in <code>report.json</code>.</p>
${table(rows)}
<h2>Result</h2>
${table(summary)}
<h2>Objective vs k</h2>
<p class="note">Submodular: each pick adds less than the one before, so the curve bends down.</p>
${curve}
<h2>Marginal gains</h2>
${gains}
${kernelSection("Kernel", r.kernel)}
${r.secondKernel ? kernelSection(r.data.target ? "Target kernel (V × Q)" : "Existing-data kernel (V × E)", r.secondKernel) : ""}
<h2>Make-up of the selection by source</h2>
${makeUp}
<h2>First picks</h2>
<table><tr><th>rank</th><th>id</th><th>source</th><th>gain</th><th>query</th></tr>
${r.preview.map((p) => `<tr><td>${p.rank}</td><td>${escapeHtml(p.id)}</td><td>${escapeHtml(p.source ?? "")}</td><td>${fmt(p.gain)}</td><td>${escapeHtml(p.x)}</td></tr>`).join("\n")}
</table>
</body></html>
`;
}

function kernelSection(title: string, k: KernelSection): string {
  const facts: [string, string][] = [
    ["shape", `${k.nRows} ${k.rows} × ${k.nCols} ${k.cols}, ${k.nnz} entries`],
    ["raw range (before scaling)", `${fmt(k.rawMin)} .. ${fmt(k.rawMax)}`],
  ];
  if (k.truncatedPrompts !== null) facts.push(["left-truncated prompts", String(k.truncatedPrompts)]);
  if (k.tilesComputed !== null) facts.push(["tiles computed / reused", `${k.tilesComputed} / ${k.tilesReused}`]);
  return `<h2>${escapeHtml(title)}</h2>${table(facts)}${histogram(k.histogram.edges, k.histogram.counts, { xLabel: "scaled kernel value", yLabel: "entries" })}`;
}

function table(rows: [string, string][]): string {
  return `<table>${rows.map(([a, b]) => `<tr><th>${escapeHtml(a)}</th><td>${escapeHtml(b)}</td></tr>`).join("")}</table>`;
}

function optimizerText(r: SelectionReport): string {
  const s = r.settings;
  switch (s.optimizer) {
    case "stochastic":
      return `stochastic greedy (ε = ${s.epsilon}, seed ${s.seed})`;
    case "bands":
      return "distributed greedy in bands (exactly lazy greedy's picks)";
    case "partition":
      return "partition-and-merge (fixed column parts, local lazy greedy, bands over the union)";
    default:
      return "lazy greedy (exact)";
  }
}

function fmtBytes(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}
