"""Answer quality on the dev question sets, retrieval on vs off, beside the copy-one-sentence yardstick.

    python bench/answer_quality.py --index dev [--sets aragog,qasper,redteam,ragdataset,yesno] [--limit N]
        [--config FILE] [--out bench/results/answer_quality]

Runs ``ragqa eval`` (``ragqa.evaluate.evaluate``) on each set against one index that holds the whole
dev corpus (distractors included): ARAGOG dev asked of the whole index, QASPER dev scoped to its
paper as QASPER was built. Writes each set's report folder and one Markdown table
(``answer_quality.md``, pasted into the README) with token F1, semantic similarity, doc hit@k and
answered rate, each with its 95% bootstrap interval, and the paired differences.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from _common import EVALCORPUS, RESULTS, ROOT, dev_set_args

SETS = {"aragog": EVALCORPUS / "aragog" / "aragog_dev_qa.jsonl",
        "redteam": EVALCORPUS / "aragog" / "aragog_dev_redteaming_qa.jsonl",
        "ragdataset": EVALCORPUS / "aragog" / "aragog_dev_llama_ragdataset_gpt35.jsonl",
        "qasper": EVALCORPUS / "qasper_leval" / "qasper_leval_dev_qa.jsonl",
        # ours: 30 yes/no questions about three QASPER dev papers, half answered "No" by the paper (QASPER's own
        # dev yes/no items are all "Yes", so a model that always says "Yes" scores full marks there)
        "yesno": ROOT / "bench" / "yes_no_questions.jsonl"}


def cell(stats: dict, metric: str) -> str:
    s = stats.get(metric)
    return "–" if not s else f"{s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]"


def diff(d: dict) -> str:
    return f"{d['diff']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def markdown(summaries: dict[str, dict]) -> str:
    lines = ["| set | arm | token F1 | semantic sim. | doc hit@k | answered |", "|---|---|---|---|---|---|"]
    for name, summary in summaries.items():
        for arm, stats in summary["arms"].items():
            lines.append(f"| {name} ({summary['questions']} q) | {arm} | {cell(stats, 'f1')} | "
                         f"{cell(stats, 'semantic_sim')} | {cell(stats, 'doc_hit')} | "
                         f"{stats['abstention']['answered_rate']:.2f} |")
    lines += ["", "| set | a − b | token F1 diff [95%] | semantic sim. diff [95%] |", "|---|---|---|---|"]
    for name, summary in summaries.items():
        for c in summary["comparisons"]:
            lines.append(f"| {name} | {c['a']} − {c['b']} | {diff(c['f1'])} | {diff(c['semantic_sim'])} |")
    return "\n".join(lines)


def main() -> None:
    ap = dev_set_args(argparse.ArgumentParser())
    ap.add_argument("--out", type=Path, default=RESULTS / "answer_quality")
    args = ap.parse_args()
    os.environ.setdefault("RAGQA_HOME", str(ROOT))
    from ragqa.config import load_config
    from ragqa.evaluate import evaluate

    config = load_config(args.config, eval={"limit": args.limit or None})
    summaries = {}
    for name in args.sets.split(","):
        summaries[name] = evaluate(SETS[name], args.index, args.out / name, config)
        print(f"{name}: {json.dumps({a: round(s['f1']['mean'], 3) for a, s in summaries[name]['arms'].items()})}")
    table = markdown(summaries)
    (args.out / "answer_quality.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
