"""Abstention calibrated on real questions: when is nothing in the index relevant enough?

    python bench/abstention.py --index dev [--home DIR]

Answerable: the three ARAGOG dev sets (asked of the whole index), the user-guide questions (the
index should hold ragqa/guide too) and the QASPER dev questions (scoped to their paper, as QASPER
was built). Off-topic: the questions in bench/off_topic_questions.jsonl,
about things no indexed document covers. For each question the signal ragqa abstains on is
computed: the best cosine between the question and the retrieved passages, and between the
question and their single best sentence. Prints, for candidate thresholds, the share of answerable
questions that would be refused and of off-topic questions that would be answered; writes
bench/results/abstention.json.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from _common import EVALCORPUS, ROOT, table, write_result

SETS = {"aragog": (EVALCORPUS / "aragog" / "aragog_dev_qa.jsonl", False),
        "redteam": (EVALCORPUS / "aragog" / "aragog_dev_redteaming_qa.jsonl", False),
        "ragdataset": (EVALCORPUS / "aragog" / "aragog_dev_llama_ragdataset_gpt35.jsonl", False),
        "guide": (ROOT / "bench" / "guide_qa.jsonl", False),
        "qasper": (EVALCORPUS / "qasper_leval" / "qasper_leval_dev_qa.jsonl", True),
        "off-topic": (ROOT / "bench" / "off_topic_questions.jsonl", False)}


def signals(retriever, question: str, doc: str | None, k: int) -> dict:
    from retrieval.context import Source, best_sentences, prompt_text

    hits = retriever.search(question, k=k, doc=doc)
    sources = [Source(n, h.chunk, prompt_text(h.chunk.text), h.score, h.dense) for n, h in enumerate(hits, 1)]
    best = best_sentences(question, sources, retriever.embedder, 1)
    return {"passage": max((h.dense for h in hits if h.dense is not None), default=-1.0),
            "sentence": best[0][2] if best else -1.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="dev")
    ap.add_argument("--k", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("RAGQA_HOME", str(ROOT))
    from retrieval import open_retriever

    retriever = open_retriever(args.index)
    scores: dict[str, list[dict]] = {}
    for name, (path, scoped) in SETS.items():
        rows = [json.loads(line) for line in Path(path).open() if line.strip()]
        scores[name] = [signals(retriever, r["question"], r.get("doc_id") if scoped else None, args.k) for r in rows]
    results = []
    for signal in ("passage", "sentence"):
        for threshold in np.arange(0.10, 0.46, 0.025):
            row = {"signal": signal, "threshold": round(float(threshold), 3)}
            for name, values in scores.items():
                below = np.mean([v[signal] < threshold for v in values])
                row[f"{name} {'answered' if name == 'off-topic' else 'abstained'}"] = float(
                    1 - below if name == "off-topic" else below)
            results.append(row)
    table(results)
    ranges = {f"{n} {s}": [round(min(v[s] for v in vals), 3), round(float(np.median([v[s] for v in vals])), 3),
                           round(max(v[s] for v in vals), 3)] for n, vals in scores.items() for s in ("passage", "sentence")}
    print("\nmin / median / max:", json.dumps(ranges, indent=1))
    write_result("abstention", {"index": args.index, "k": args.k, "ranges": ranges, "results": results})


if __name__ == "__main__":
    main()
