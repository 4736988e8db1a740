"""Tables, verdicts on the issue's targets, the plot and the README section, all from results.json."""

from __future__ import annotations

import math
from statistics import mean, stdev

BUILTIN_SETS = ("gsm8k-eval", "p3-eval")
SCENARIOS = {
    "instruction": ("(a) Instruction tuning: 30% of the corpus", ["base model", "DELIFT (FL)", "DELIFT (SE)", "random", "full data"]),
    "task": ("(b) Task-specific: FLMI with a GSM8K target slice", ["FLMI", "random", "DELIFT (FL)", "full data"]),
    "continual": ("(c) Continual: FLCG, new GSM8K data after P3 (existing)", ["existing only", "FLCG", "random", "full new data"]),
}


def _rows(summary: dict, scenario: str, arm: str) -> list[dict]:
    # the task stage is compared with the instruction stage's random, FL and full-data models (same models)
    src = "instruction" if scenario == "task" and arm != "FLMI" else scenario
    return [r for r in summary["rows"] if r["scenario"] == src and r["arm"] == arm]


def _values(rows: list[dict], metric) -> list[float]:
    out = []
    for r in rows:
        v = metric(r)
        if v is not None:
            out.append(v)
    return out


def _loss(name):
    return lambda r: r["evals"].get(name, {}).get("loss")


def _mean_loss(r):
    ls = [r["evals"][n]["loss"] for n in BUILTIN_SETS if n in r["evals"]]
    return sum(ls) / len(ls) if ls else None


def _field(name, key):
    return lambda r: r["evals"].get(name, {}).get(key)


def stats(vals: list[float]) -> tuple[float, float, int]:
    if not vals:
        return math.nan, math.nan, 0
    return mean(vals), (stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def fmt(vals: list[float], digits: int) -> str:
    m, s, n = stats(vals)
    if n == 0:
        return "–"
    return f"{m:.{digits}f} ± {s:.{digits}f}" if n > 1 else f"{m:.{digits}f}"


def metric_columns(summary: dict) -> list[tuple[str, object, int]]:
    cols = [("loss GSM8K", _loss("gsm8k-eval"), 4), ("loss P3", _loss("p3-eval"), 4), ("mean loss", _mean_loss, 4)]
    extra = [n for n in summary["evalSets"] if n not in BUILTIN_SETS]
    cols += [(f"loss {n}", _loss(n), 4) for n in extra]
    cols += [("ROUGE-L GSM8K", _field("gsm8k-eval", "rougeL"), 2), ("ROUGE-L P3", _field("p3-eval", "rougeL"), 2)]
    cols += [(f"ROUGE-L {n}", _field(n, "rougeL"), 2) for n in extra]
    cols += [("EM GSM8K", _field("gsm8k-eval", "exactMatch"), 1)]
    return cols


def scenario_table(summary: dict, scenario: str) -> str:
    title, arms = SCENARIOS[scenario]
    cols = metric_columns(summary)
    lines = [f"**{title}**", "", "| arm | samples | seeds | " + " | ".join(c[0] for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for arm in arms:
        rows = _rows(summary, scenario, arm)
        if not rows:
            continue
        seeds = "–" if rows[0]["seed"] is None else str(len(rows))
        lines.append(f"| {arm} | {rows[0]['samples']:,} | {seeds} | "
                     + " | ".join(fmt(_values(rows, c[1]), c[2]) for c in cols) + " |")
    return "\n".join(lines)


def verdicts(summary: dict) -> list[dict]:
    """The issue's targets, judged on the numbers (never tuned toward them)."""
    out = []
    fl = _values(_rows(summary, "instruction", "DELIFT (FL)"), _mean_loss)
    rnd = _values(_rows(summary, "instruction", "random"), _mean_loss)
    full = _values(_rows(summary, "instruction", "full data"), _mean_loss)
    if fl and rnd:
        (mf, _, _), (mr, sr, _) = stats(fl), stats(rnd)
        margin = mr - mf
        out.append({"target": "DELIFT-30% beats random-30% on held-out loss by more than the spread over random seeds",
                    "met": margin > sr, "detail": f"mean held-out loss: DELIFT (FL) {mf:.4f}, random {mr:.4f} ± {sr:.4f} "
                    f"(std over {len(rnd)} seeds; best seed {min(rnd):.4f}): margin {margin:+.4f} vs spread {sr:.4f}"})
    if fl and full:
        mf, mfull = stats(fl)[0], stats(full)[0]
        rel = (mf - mfull) / mfull
        out.append({"target": "DELIFT-30% is within 2% of full data's held-out loss", "met": rel <= 0.02,
                    "detail": f"DELIFT (FL) {mf:.4f} vs full data {mfull:.4f}: {100 * rel:+.2f}%"})
    flmi = _values(_rows(summary, "task", "FLMI"), _loss("gsm8k-eval"))
    rnd_g = _values(_rows(summary, "task", "random"), _loss("gsm8k-eval"))
    if flmi and rnd_g:
        (mm, _, _), (mr, sr, _) = stats(flmi), stats(rnd_g)
        out.append({"target": "FLMI-30% beats random-30% on the target task's held-out loss (GSM8K)", "met": mm < mr,
                    "detail": f"GSM8K held-out loss: FLMI {mm:.4f}, random {mr:.4f} ± {sr:.4f}: margin {mr - mm:+.4f}"
                    + (" (more than the spread)" if mr - mm > sr else " (not more than the spread)" if mm < mr else "")})
    return out


def comparisons(summary: dict) -> list[str]:
    """Plain statements on the other arms (not targets): where DELIFT does not beat random, say so."""
    out = []
    for scen, arm, metric, what in (("instruction", "DELIFT (SE)", _mean_loss, "mean held-out loss"),
                                    ("continual", "FLCG", _loss("gsm8k-eval"), "GSM8K held-out loss"),
                                    ("continual", "FLCG", _loss("p3-eval"), "P3 held-out loss")):
        a = _values(_rows(summary, scen, arm), metric)
        r = _values(_rows(summary, scen, "random"), metric)
        if not a or not r:
            continue
        (ma, _, _), (mr, sr, _) = stats(a), stats(r)
        if ma < mr - sr:
            word = "beats random by more than the spread"
        elif ma < mr:
            word = "is below random's mean but within its spread (no measurable gain)"
        else:
            word = "does NOT beat random"
        out.append(f"{arm} {word} on {what}: {ma:.4f} vs {mr:.4f} ± {sr:.4f}.")
    for scen, arm in (("instruction", "DELIFT (FL)"), ("instruction", "DELIFT (SE)"), ("task", "FLMI")):
        a = _values(_rows(summary, scen, arm), _field("gsm8k-eval", "rougeL"))
        r = _values(_rows(summary, scen, "random"), _field("gsm8k-eval", "rougeL"))
        p = _values(_rows(summary, scen, arm), _field("p3-eval", "rougeL"))
        rp = _values(_rows(summary, scen, "random"), _field("p3-eval", "rougeL"))
        if a and r and p and rp:
            out.append(f"ROUGE-L of {arm} vs random: GSM8K {stats(a)[0]:.2f} vs {stats(r)[0]:.2f} ± {stats(r)[1]:.2f}, "
                       f"P3 {stats(p)[0]:.2f} vs {stats(rp)[0]:.2f} ± {stats(rp)[1]:.2f}.")
    return out


def cost_lines(summary: dict) -> list[str]:
    t = summary["timings"]
    lines = []
    fl = t.get("select DELIFT (FL)")
    ft_fl = [v for k, v in t.items() if k.startswith("fine-tune instruction/DELIFT (FL)")]
    ft_full = [v for k, v in t.items() if k.startswith("fine-tune instruction/full data")]
    if fl and ft_fl and ft_full:
        saved_w = mean(x["wall_s"] for x in ft_full) - mean(x["wall_s"] for x in ft_fl)
        saved_c = mean(x["cpu_s"] for x in ft_full) - mean(x["cpu_s"] for x in ft_fl)
        lines.append(f"Kernel + selection (DELIFT FL, {summary['selections']['DELIFT (FL)']['report']['nnz']:,} pairs): "
                     f"{fl['wall_s'] / 60:.1f} min wall, {fl['cpu_s'] / 60:.1f} min CPU; fine-tuning it saves (full data "
                     f"minus 30%): {saved_w / 60:.1f} min wall, {saved_c / 60:.1f} min CPU.")
    return lines


def timing_table(summary: dict) -> str:
    """Each part's own wall and CPU time (measured when it was computed; a cached part keeps its figures), their
    sum (the study from scratch), and this invocation's (less when parts came from the cache)."""
    lines = ["| part | wall (min) | CPU (min) |", "|---|---|---|"]
    t = summary["timings"]
    parts = {k: v for k, v in t.items() if k != "total"}
    for k, v in parts.items():
        lines.append(f"| {k} | {v['wall_s'] / 60:.1f} | {v['cpu_s'] / 60:.1f} |")
    study = [v for k, v in parts.items() if not k.startswith("dense check")]
    lines.append(f"| **the study from scratch (sum of the parts above{', without the dense check' if len(study) < len(parts) else ''})** | "
                 f"{sum(v['wall_s'] for v in study) / 60:.1f} | {sum(v['cpu_s'] for v in study) / 60:.1f} |")
    if "total" in t:
        lines.append(f"| this invocation (cached parts cost nothing) | {t['total']['wall_s'] / 60:.1f} | {t['total']['cpu_s'] / 60:.1f} |")
    return "\n".join(lines)


def study_minutes(summary: dict) -> tuple[float, float]:
    parts = [v for k, v in summary["timings"].items() if k != "total" and not k.startswith("dense check")]
    return sum(v["wall_s"] for v in parts) / 60, sum(v["cpu_s"] for v in parts) / 60


def dense_lines(summary: dict) -> list[str]:
    d = summary.get("denseCheck")
    if not d:
        return []
    rnd = d["fRandomOverDense"]
    return [f"Sparse vs dense on a {d['samples']:,}-sample slice of the corpus (k = {d['k']}): the sparse kernel "
            f"({d['sparsePairs']:,} pairs, {summary['config']['neighbors']} neighbours + {summary['config']['randomColumns']} random "
            f"columns) against the dense one ({d['densePairs']:,} pairs): overlap of the selections {100 * d['overlap']:.1f}% "
            f"(two random subsets: {100 * d['randomOverlapExpected']:.1f}% expected); f(A) under the dense kernel: sparse "
            f"selection {100 * d['fSparseOverDense']:.2f}% of the dense selection's (random subsets: "
            f"{100 * mean(rnd):.2f}%). Cost: dense {d['dense']['wall_s'] / 60:.1f} min wall / {d['dense']['cpu_s'] / 60:.1f} min CPU, "
            f"sparse {d['sparse']['wall_s'] / 60:.1f} / {d['sparse']['cpu_s'] / 60:.1f}."] + dense_cost_lines(d)


def dense_cost_lines(d: dict) -> list[str]:
    """The dense kernel's measured rate, and what the issue's 1,000-sample slice would cost at it."""
    prompts = d["densePairs"] + d["samples"]   # every pair plus one baseline per target
    per_cpu = prompts / d["dense"]["cpu_s"]
    per_wall = prompts / d["dense"]["wall_s"]
    line = (f"The dense kernel ran at {per_cpu:.0f} prompts per CPU-second ({per_wall:.0f} per wall-second on the "
            f"shared machine).")
    if d["samples"] < 1000:
        big = 1000 * 1000 + 1000
        line += (f" The issue's 1,000-sample slice was NOT run: {big:,} prompts at that rate are "
                 f"{big / per_cpu / 3600:.1f} CPU-hours ({big / per_cpu / 2 / 3600:.1f} h on two idle cores), "
                 f"beyond this study's time; the figures above are for {d['samples']:,} samples "
                 f"(`--dense-check --dense-slice 1000` runs it, resumably).")
    return [line]


def render_tables(summary: dict) -> str:
    parts = [f"# Quality study results ({summary['config']['name']}, {summary['createdAt']})", ""]
    for scen in SCENARIOS:
        parts += [scenario_table(summary, scen), ""]
    parts.append("Targets:")
    for v in verdicts(summary):
        parts.append(f"- {'MET' if v['met'] else 'NOT MET'}: {v['target']}. {v['detail']}.")
    parts += ["", "Other comparisons:"] + [f"- {c}" for c in comparisons(summary)]
    parts += ["", composition_line(summary), zero_gain_line(summary), kernel_line(summary)]
    parts += [""] + cost_lines(summary) + [""] + dense_lines(summary) + ["", timing_table(summary), ""]
    return "\n".join(parts)


def quick_line(quick: dict | None) -> str:
    if not quick or "total" not in quick.get("timings", {}):
        return ""
    w, c = study_minutes(quick)
    t = quick["timings"]["total"]
    return (f"`--quick` (nested smaller splits; its results are not in this README), measured {quick['createdAt']} "
            f"(load average at the end {quick.get('loadAverageAtEnd')}): from scratch {w:.1f} min wall, {c:.1f} min CPU "
            f"(sum of its parts); its last invocation {t['wall_s'] / 60:.1f} min wall, {t['cpu_s'] / 60:.1f} min CPU.")


def compact_timing_table(summary: dict) -> str:
    """The parts grouped (the README's table; results.md has every part)."""
    groups: dict[str, list[float]] = {}
    for k, v in summary["timings"].items():
        if k == "total" or k.startswith("dense check"):
            continue
        if k.startswith("fine-tune"):
            scen = k.split(" ", 1)[1].split("/")[0]
            g = f"fine-tune, {'(a) + (b)' if scen in ('instruction', 'task') else '(c) continual'}"
        else:
            g = k
        acc = groups.setdefault(g, [0.0, 0.0])
        acc[0] += v["wall_s"]
        acc[1] += v["cpu_s"]
    lines = ["| part | wall (min) | CPU (min) |", "|---|---|---|"]
    lines += [f"| {g} | {w / 60:.1f} | {c / 60:.1f} |" for g, (w, c) in groups.items()]
    w, c = study_minutes(summary)
    lines.append(f"| **the study from scratch** | **{w:.1f}** | **{c:.1f}** |")
    return "\n".join(lines)


def render_readme_section(summary: dict, png: str, quick: dict | None = None) -> str:
    c = summary["config"]
    parts = [f"Measured {summary['createdAt']} by `python3 bench/quality/run.py` on this project's shared 2-core VM "
             f"(load average at the end {summary.get('loadAverageAtEnd')}); method, splits and recipe in "
             f"`bench/quality/README.md`. Base model `{c['model']}`; 30% budgets; sparse kernels ({c['neighbors']} "
             f"neighbours + {c['randomColumns']} random columns per target); each arm fine-tuned with one fixed recipe "
             f"({c['recipe']['epochs']} epochs, lr {c['recipe']['lr']}); random: {len(c['randomSeeds'])} seeds (subset and "
             f"fine-tuning), mean ± std; DELIFT arms: {len(c['deliftSeeds'])} fine-tuning seed(s). Loss = mean NLL per "
             f"response token on held-out data (lower is better; mean loss = average of the GSM8K and P3 sets); ROUGE-L and "
             f"exact match (EM) of greedy generations on the first {c['generate']} samples of each set.", ""]
    for scen in SCENARIOS:
        parts += [scenario_table(summary, scen), ""]
    parts.append("Targets of issue 12:")
    for v in verdicts(summary):
        parts.append(f"- **{'met' if v['met'] else 'not met'}**: {v['target']}. {v['detail']}.")
    parts += [""] + [f"- {x}" for x in comparisons(summary)]
    parts += ["", composition_line(summary), zero_gain_line(summary), kernel_line(summary)]
    parts += [""] + cost_lines(summary) + [""] + dense_lines(summary)
    parts += ["", f"![held-out loss by arm]({png})", ""]
    w, c = study_minutes(summary)
    parts += [f"Time of each part (the study from scratch: {w:.1f} min wall, {c:.1f} min CPU; wall times depend on "
              f"the shared machine's load when each part ran, CPU times less so; every part in `bench/quality/results/results.md`):", "", compact_timing_table(summary)]
    if quick_line(quick):
        parts += ["", quick_line(quick)]
    return "\n".join(parts)


def render_plot(summary: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("instruction", "(a) instruction: mean held-out loss", _mean_loss),
              ("task", "(b) task: GSM8K held-out loss", _loss("gsm8k-eval")),
              ("continual", "(c) continual: GSM8K held-out loss", _loss("gsm8k-eval"))]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (scen, title, metric) in zip(axes, panels):
        arms = [a for a in SCENARIOS[scen][1] if _rows(summary, scen, a) and a not in ("base model", "existing only")]
        for y, arm in enumerate(arms):
            vals = _values(_rows(summary, scen, arm), metric)
            m, s, n = stats(vals)
            color = "#888888" if arm == "random" else ("#222222" if arm.startswith("full") or arm == "existing only" else "#1f77b4")
            ax.scatter(vals, [y] * len(vals), color=color, alpha=0.45, s=18)
            ax.errorbar([m], [y], xerr=[s] if n > 1 else None, fmt="o", color=color, capsize=3)
        ax.set_yticks(range(len(arms)))
        ax.set_yticklabels(arms, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"delift quality study ({summary['config']['name']}): lower is better; grey = random seeds, mean ± std",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def composition_line(summary: dict) -> str:
    c = summary.get("composition")
    if not c:
        return ""
    return ("Share of GSM8K samples: corpus " + f"{100 * c['corpus']:.1f}%, "
            + ", ".join(f"{k} {100 * v:.1f}%" for k, v in c.items() if k != "corpus") + ".")


def zero_gain_line(summary: dict) -> str:
    z = summary.get("zeroGainPicks")
    if not z:
        return ""
    return ("Picks with zero marginal gain (the objective was saturated; greedy's later choices are arbitrary): "
            + ", ".join(f"{k} {v['zeroGain']} of {v['picks']}" for k, v in z.items()) + ".")


def kernel_line(summary: dict) -> str:
    k = summary.get("kernelDiagnostics")
    if not k:
        return ""
    return (f"The FL kernel's raw utilities UF (stored entries: {k['entries']:,}): {100 * k['positive']:.1f}% positive, "
            f"mean {k['mean']:.5f} (std {k['std']:.5f}); mean for an example of the same source as the target "
            f"{k['meanSameSource']:.5f}, of another source {k['meanOtherSource']:.5f}; the target as its own example "
            f"{k['meanDiagonal']:.5f}.")
