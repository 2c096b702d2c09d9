"""Retrieval quality on ARAGOG dev: doc-hit@1, doc-hit@5 and MRR for dense, BM25 and hybrid.

    python bench/retrieval_quality.py [--qa ../shared/evalcorpus/aragog/aragog_dev_qa.jsonl]

Gold document = the question's ``source_pdf``. The PDFs are looked up by name anywhere under the
QA file's corpus folder and ingested into the index ``bench-aragog`` (incremental: only once).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from _common import EVALCORPUS, table, write_result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qa", type=Path, default=EVALCORPUS / "aragog" / "aragog_dev_qa.jsonl")
    ap.add_argument("--corpus", type=Path, default=EVALCORPUS)
    ap.add_argument("--index", default="bench-aragog")
    args = ap.parse_args()
    if not args.qa.exists():
        raise SystemExit(f"{args.qa}: QA file absent — pass --qa FILE (ARAGOG jsonl with question and source_pdf)")
    os.environ.setdefault("RAGQA_HOME", str(Path(__file__).resolve().parents[1]))
    from ingest import ingest
    from retrieval import Retriever
    from retrieval.embed import load_embedder
    from retrieval.store import IndexStore

    rows = [json.loads(line) for line in args.qa.open() if line.strip()]
    wanted = {r["source_pdf"] for r in rows}
    pdfs = [p for p in args.corpus.rglob("*.pdf") if p.name in wanted]
    embedder = load_embedder()
    ingest(pdfs, index=args.index, embedder=embedder)
    retriever = Retriever(IndexStore.open(args.index), embedder)
    results = []
    for mode in ("dense", "bm25", "hybrid"):
        ranks = []
        for r in rows:
            names = [Path(h.chunk.path).name for h in retriever.search(r["question"], k=10, mode=mode)]
            docs = list(dict.fromkeys(names))
            ranks.append(docs.index(r["source_pdf"]) + 1 if r["source_pdf"] in docs else None)
        hit = lambda k: float(np.mean([x is not None and x <= k for x in ranks]))  # noqa: E731
        results.append({"mode": mode, "questions": len(rows), "doc_hit@1": hit(1), "doc_hit@5": hit(5),
                        "mrr": float(np.mean([1 / x if x else 0.0 for x in ranks]))})
    table(results)
    write_result("retrieval_quality", {"qa": str(args.qa), "results": results})


if __name__ == "__main__":
    main()
