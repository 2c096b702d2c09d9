"""The evaluation report as Markdown and as a chart with 95% confidence intervals."""
from __future__ import annotations

from pathlib import Path

LABELS = {"f1": "token F1", "em": "exact match", "rouge_l": "ROUGE-L", "bleu": "BLEU", "meteor": "METEOR",
          "semantic_sim": "semantic sim.", "doc_hit": "doc hit@k", "mrr": "MRR", "mc_correct": "MC accuracy"}


def _cell(stat: dict | None) -> str:
    return "–" if not stat else f"{stat['mean']:.3f} [{stat['lo']:.3f}, {stat['hi']:.3f}]"


def markdown(summary: dict) -> str:
    arms = summary["arms"]
    metrics = [m for m in LABELS if any(m in s for s in arms.values())]
    lines = [f"# Evaluation: {summary['qa']}", "",
             f"{summary['questions']} questions, index `{summary['index']}`, model `{summary['config']['model']}`, "
             f"k={summary['config']['k']}. Cells: mean [95% bootstrap interval].", "",
             "| arm | " + " | ".join(LABELS[m] for m in metrics) + " | answered | precision | accuracy |",
             "|---" * (len(metrics) + 4) + "|"]
    for name, s in arms.items():
        a = s["abstention"]
        lines.append(f"| {name} | " + " | ".join(_cell(s.get(m)) for m in metrics)
                     + f" | {a['answered_rate']:.2f} | {a['precision']:.2f} | {a['accuracy']:.2f} |")
    cited = {name: s for name, s in arms.items() if "citations" in s or "loop_stops" in s}
    if cited:
        lines += ["", "| arm | cites an existing source | …in the model's own words | states a figure no passage holds "
                  "| replies cut by the loop stop |", "|---|---|---|---|---|"]
        for name, s in cited.items():
            c = s.get("citations") or {}
            rate = lambda key: f"{c[key]:.0%}" if key in c else "–"  # noqa: E731
            lines.append(f"| {name} | {rate('cite_rate')} | {rate('model_cite_rate')} | "
                         f"{rate('unsupported_figure_rate')} | {s.get('loop_stops', '–')} |")
    if summary["comparisons"]:
        lines += ["", "## Paired comparisons (same questions)", "",
                  "| a vs b | F1 diff [95%] | semantic sim. diff [95%] | correct: wins / losses, McNemar p |",
                  "|---|---|---|---|"]
        for c in summary["comparisons"]:
            f, s, k = c["f1"], c["semantic_sim"], c["correct"]
            lines.append(f"| {c['a']} vs {c['b']} | {f['diff']:+.3f} [{f['lo']:+.3f}, {f['hi']:+.3f}] | "
                         f"{s['diff']:+.3f} [{s['lo']:+.3f}, {s['hi']:+.3f}] | {k['wins']} / {k['losses']}, p={k['p']:.3g} |")
    lines += ["", "A correct answer has token F1 ≥ "
              f"{summary['config']['eval']['correct_f1']} (accuracy, precision and McNemar use it)."]
    for name, why in summary.get("skipped_metrics", {}).items():
        lines.append(f"- {name} skipped: {why}")
    if summary.get("missing_docs"):
        lines.append(f"- {len(summary['missing_docs'])} gold documents are not in the index: "
                     + ", ".join(summary["missing_docs"][:20]))
    for p in summary.get("problems", [])[:50]:
        lines.append(f"- {p}")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt
    import numpy as np

    arms = summary["arms"]
    metrics = [m for m in LABELS if any(m in s for s in arms.values())]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(metrics) * max(1, len(arms)) / 2), 4))
    width = 0.8 / max(1, len(arms))
    for i, (name, s) in enumerate(arms.items()):
        means = [s.get(m, {}).get("mean", np.nan) for m in metrics]
        err = [[s[m]["mean"] - s[m]["lo"] if m in s else 0 for m in metrics],
               [s[m]["hi"] - s[m]["mean"] if m in s else 0 for m in metrics]]
        ax.bar(np.arange(len(metrics)) + i * width, means, width, yerr=err, capsize=3, label=name)
    ax.set_xticks(np.arange(len(metrics)) + width * (len(arms) - 1) / 2, [LABELS[m] for m in metrics])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (95% bootstrap CI)")
    ax.set_title(f"{Path(summary['qa']).name}: {summary['questions']} questions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
