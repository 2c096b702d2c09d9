"""Retrieval quality over the whole dev corpus: doc-hit@1, doc-hit@5 and MRR for dense, BM25 and hybrid.

    python bench/retrieval_quality.py [--qa FILE ...] [--corpus ../shared/evalcorpus] [--index bench-dev]

Every PDF and blog post of the corpus is ingested (incremental: only once), distractors included,
so a question about bert.pdf competes with 42 other documents, as a user's library would. Gold
document = the question's ``source_pdf``. Default question sets: ARAGOG dev, the red-teaming
questions and the LlamaIndex rag-dataset questions on llama.pdf.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from _common import EVALCORPUS, corpus_files, table, write_result

QA_SETS = ["aragog_dev_qa.jsonl", "aragog_dev_redteaming_qa.jsonl", "aragog_dev_llama_ragdataset_gpt35.jsonl"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qa", type=Path, nargs="+", default=[EVALCORPUS / "aragog" / n for n in QA_SETS])
    ap.add_argument("--corpus", type=Path, default=EVALCORPUS)
    ap.add_argument("--index", default="bench-dev")
    args = ap.parse_args()
    for qa in args.qa:
        if not qa.exists():
            raise SystemExit(f"{qa}: QA file absent — pass --qa FILE (ARAGOG jsonl with question and source_pdf)")
    os.environ.setdefault("RAGQA_HOME", str(Path(__file__).resolve().parents[1]))
    from ingest import ingest
    from retrieval import Retriever
    from retrieval.embed import load_embedder
    from retrieval.store import IndexStore

    embedder = load_embedder()
    ingest(corpus_files(args.corpus), index=args.index, embedder=embedder)
    retriever = Retriever(IndexStore.open(args.index), embedder)
    results = []
    for qa in args.qa:
        results += evaluate(retriever, qa)
    table(results)
    write_result("retrieval_quality", {"corpus": str(args.corpus), "documents": len(retriever.store.manifest.docs),
                                       "chunks": len(retriever.store.chunks), "results": results})


def evaluate(retriever, qa: Path) -> list[dict]:
    rows = [json.loads(line) for line in qa.open() if line.strip()]
    results = []
    for mode in ("dense", "bm25", "hybrid"):
        ranks = []
        for r in rows:
            names = [Path(h.chunk.path).name for h in retriever.search(r["question"], k=10, mode=mode)]
            docs = list(dict.fromkeys(names))
            ranks.append(docs.index(r["source_pdf"]) + 1 if r["source_pdf"] in docs else None)
        hit = lambda k: float(np.mean([x is not None and x <= k for x in ranks]))  # noqa: E731
        results.append({"qa": qa.stem, "mode": mode, "questions": len(rows), "doc_hit@1": hit(1),
                        "doc_hit@5": hit(5), "mrr": float(np.mean([1 / x if x else 0.0 for x in ranks]))})
    return results


if __name__ == "__main__":
    main()
