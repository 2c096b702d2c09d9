"""Retrieval quality over the whole dev corpus: doc-hit@1, doc-hit@5, MRR, answer recall@5 (the gold
answer's content words in the 5 passages an answer is made from) and, where a set labels its evidence
(the rag-dataset's ``reference_contexts``), evidence@5 — for dense, BM25, hybrid and hybrid reranked
by the answer model (UPR, ``answer.rerank_depth``: what the answer pipeline reads).

    python bench/retrieval_quality.py [--qa FILE ...] [--corpus ../shared/evalcorpus] [--index bench-dev]
        [--no-rerank]

Every PDF and blog post of the corpus is ingested (incremental: only once), distractors included,
so a question about bert.pdf competes with 42 other documents, as a user's library would. Gold
document = the question's ``source_pdf``. Default question sets: ARAGOG dev, the red-teaming
questions and the LlamaIndex rag-dataset questions on llama.pdf.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import unicodedata
from pathlib import Path

import numpy as np
from tqdm import tqdm
from _common import EVALCORPUS, corpus_files, table, write_result

QA_SETS = ["aragog_dev_qa.jsonl", "aragog_dev_redteaming_qa.jsonl", "aragog_dev_llama_ragdataset_gpt35.jsonl"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qa", type=Path, nargs="+", default=[EVALCORPUS / "aragog" / n for n in QA_SETS])
    ap.add_argument("--corpus", type=Path, default=EVALCORPUS)
    ap.add_argument("--index", default="bench-dev")
    ap.add_argument("--no-rerank", action="store_true", help="skip the reranked row (it loads the answer model)")
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
    rerank = None if args.no_rerank else reranker()
    results = []
    for qa in args.qa:
        results += evaluate(retriever, qa, rerank=rerank)
    table(results)
    write_result("retrieval_quality", {"corpus": str(args.corpus), "documents": len(retriever.store.manifest.docs),
                                       "chunks": len(retriever.store.chunks), "results": results})


def reranker():
    """The answer pipeline's reranking: the default answer model, untuned, at ``answer.rerank_depth``."""
    from ragqa.answer import rerank_by_model
    from ragqa.config import load_config
    from ragqa.generators import load_generator

    config = load_config(None)
    generator = load_generator(config.generator)
    return lambda question, hits: rerank_by_model(question, hits[:config.answer.rerank_depth], generator)


def evaluate(retriever, qa: Path, k: int = 5, rerank=None) -> list[dict]:
    from ragqa.citations import content_words

    rows = [json.loads(line) for line in qa.open() if line.strip()]
    results = []
    for mode in ("dense", "bm25", "hybrid") + (("hybrid+rerank",) if rerank else ()):
        ranks, recall, evidence = [], [], []
        for r in tqdm(rows, desc=f"{qa.stem} {mode}", disable=mode != "hybrid+rerank"):
            hits = retriever.search(r["question"], k=10, mode=mode.split("+")[0])
            if mode == "hybrid+rerank":
                hits = rerank(r["question"], hits)
            docs = list(dict.fromkeys(Path(h.chunk.path).name for h in hits))
            ranks.append(docs.index(r["source_pdf"]) + 1 if r["source_pdf"] in docs else None)
            passages = " ".join(h.chunk.text for h in hits[:k])
            recall.append(answer_recall(content_words(r["answer"]), content_words(passages)))
            if r.get("reference_contexts"):
                evidence.append(evidence_found([h.chunk.text for h in hits[:k]], r["reference_contexts"]))
        hit = lambda n: float(np.mean([x is not None and x <= n for x in ranks]))  # noqa: E731
        results.append({"qa": qa.stem, "mode": mode, "questions": len(rows), "doc_hit@1": hit(1),
                        "doc_hit@5": hit(5), "mrr": float(np.mean([1 / x if x else 0.0 for x in ranks])),
                        f"answer_recall@{k}": float(np.mean(recall)),
                        f"answer_found@{k}": float(np.mean([x >= 0.5 for x in recall])),
                        f"evidence@{k}": float(np.mean(evidence)) if evidence else None})
    return results


def answer_recall(wanted: set[str], found: set[str]) -> float:
    """Share of the gold answer's content words (``wanted``) found in those of the passages the answer
    model is given (``found``).

    Doc-hit says the right document was found; this says whether the right *passages* were: all five
    retrieved passages for "What are the two main tasks BERT is pre-trained on?" came from bert.pdf, none
    from the section that names the tasks, and no answer shaping can quote what is not there.
    """
    return len(wanted & found) / len(wanted) if wanted else 1.0


def evidence_found(passages: list[str], contexts: list[str], n: int = 5, share: float = 0.5) -> bool:
    """Whether one of ``passages`` lies mostly (``share`` of its word ``n``-grams) inside a context the
    question set labels as its evidence. Unlike answer recall, which counts words and so favours BM25,
    this asks for the labelled passage itself, whichever ranking found it; n-grams of normalised words
    absorb what two PDF extractors do differently (ligatures, line breaks, hyphens)."""
    labelled = set().union(*(_grams(c, n) for c in contexts))
    return any((grams := _grams(p, n)) and len(grams & labelled) / len(grams) >= share for p in passages)


def _grams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


if __name__ == "__main__":
    main()
