"""Training-data generation and selection speed, and what the data looks like.

    python bench/gen_data.py [--corpus DIR] [--teacher deterministic|default] [--n N] [--max-chunks N]
                             [--select 10000] [--show 10]

1. Ingests the corpus (all PDFs and Markdown posts of ../shared/evalcorpus by default) into a
   cached bench index with MiniLM, then runs `generate_data` over it: records per minute, the
   filter funnel, the kind mix, and `--show` random records printed verbatim.
2. Times `select_data` on `--select` synthetic records end to end (quality proxy, k-center over
   question embeddings, necessity prompts built with retrieval, dataset written) with hash
   embeddings and an instant stand-in model, so the pipeline's own cost is measured; MiniLM's
   embedding rate is measured on 200 questions and reported beside it.
Writes bench/results/gen_data.json. Set RAGQA_THREADS (2 cores: never beside another model process).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from _common import EVALCORPUS, ROOT, corpus_files, require_corpus, write_result

sys.path.insert(0, str(ROOT / "tests"))


def ingest_corpus(corpus: Path, home: Path) -> tuple[float, int]:
    """The bench index under ``home`` (kept between runs: unchanged files are skipped)."""
    from ingest import ingest

    os.environ["RAGQA_HOME"] = str(home)
    started = time.perf_counter()
    report = ingest(corpus_files(corpus), index="bench-gen", progress=False)
    return time.perf_counter() - started, report.chunks_total


def generate(args, out: Path) -> dict:
    from finetune import generate_data
    from ragqa.config import Config, DataConfig

    config = Config(data=DataConfig(n=args.n, teacher=args.teacher, max_chunks=args.max_chunks))
    started = time.perf_counter()
    stats = generate_data("bench-gen", out, config, progress=False)
    seconds = time.perf_counter() - started
    records = [json.loads(line) for split in ("train", "validation", "test") for line in open(out / f"{split}.jsonl")]
    shown = random.Random(0).sample(records, min(args.show, len(records)))
    return {"teacher": stats["teacher"], "seconds": round(seconds, 1), "records": stats["records"],
            "records_per_min": round(60 * stats["records"] / seconds, 1), "funnel": stats["funnel"],
            "kinds": stats["kinds"], "abstain": sum(r["abstain"] for r in records), "splits": stats["splits"],
            "examples": [{k: r[k] for k in ("kind", "question", "answer", "title", "abstain")} for r in shown]}


class Instant:
    """A stand-in base model that answers at once (half right, half wrong), to time the pipeline."""

    name = "bench/instant"

    def generate_batch(self, chats, max_new_tokens=None):
        return [c[-1]["content"][-60:] if i % 2 else "I do not know." for i, c in enumerate(chats)]

    def generate(self, messages, max_new_tokens=None):
        yield self.generate_batch([messages])[0]

    def count_tokens(self, text):
        return int(len(text.split()) * 1.3) + 1


def synthetic(n: int, workdir: Path):
    """``n`` records over a 200-document synthetic index (hash embeddings), as a gen-data folder."""
    from fakes import WordEmbedder
    from finetune._output import write_dataset
    from finetune._records import Record
    from ingest import ingest
    from retrieval import Retriever
    from retrieval.store import IndexStore

    rng, vocab = random.Random(0), [f"w{i}" for i in range(3000)]
    docs = workdir / "docs"
    docs.mkdir()
    for d in range(200):
        (docs / f"d{d}.md").write_text(f"# Doc {d}\n\n" + " ".join(rng.choice(vocab) for _ in range(300)) + ".\n")
    embedder = WordEmbedder(max_tokens=256)
    ingest([docs], index="synthetic", embedder=embedder, progress=False)
    retriever = Retriever(IndexStore.open("synthetic"), embedder)
    records = []
    for i in range(n):
        chunk = rng.choice(retriever.store.chunks)
        quote = " ".join(chunk.text.split()[3:15])
        source = {"n": 1, "chunk_id": chunk.id, "title": chunk.title, "label": chunk.location, "text": chunk.text, "term": ""}
        question = "What about " + " ".join(rng.choice(vocab) for _ in range(8)) + "?"
        records.append(Record(question, f'"{quote}" [1]', "factual", "synthetic", chunk.doc_id, chunk.path,
                              chunk.title, chunk.id, [chunk.id], sources=[source]))
    data = workdir / "data"
    write_dataset(data, {"train": records, "validation": [], "test": []}, {"splits": {}}, "synthetic\n")
    return data, retriever, embedder


def select_timing(n: int, budget: int) -> dict:
    from finetune import select_data
    from ragqa.config import Config, DataConfig

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RAGQA_HOME"] = tmp
        data, retriever, embedder = synthetic(n, Path(tmp))
        stages = []
        started = time.perf_counter()
        stats = select_data(data, Path(tmp) / "selected", Config(data=DataConfig(budget=budget, batch_size=64)),
                            generator=Instant(), retriever=retriever, embedder=embedder, progress=False,
                            say=lambda line: stages.append((round(time.perf_counter() - started, 2), line)))
        return {"records": n, "budget": budget, "seconds": round(time.perf_counter() - started, 1),
                "stage_lines": stages, "stages": stats["stages"]}


def minilm_rate(questions: int = 200) -> float:
    """Questions embedded per second by the default embedder (what coverage costs per record)."""
    from retrieval.embed import load_embedder

    embedder = load_embedder()
    texts = [f"What does method {i} report about the training objective of model {i}?" for i in range(questions)]
    started = time.perf_counter()
    embedder.embed_batch(texts)
    return questions / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=EVALCORPUS)
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "ragqa-bench-gen")
    parser.add_argument("--teacher", default="deterministic")
    parser.add_argument("--n", type=int, default=100000, help="records (default: as many as the corpus gives)")
    parser.add_argument("--max-chunks", type=int, default=0)
    parser.add_argument("--select", type=int, default=10000, help="synthetic records for the selection timing (0: skip)")
    parser.add_argument("--show", type=int, default=10)
    args = parser.parse_args()
    require_corpus(args.corpus)
    result = {}
    ingest_s, chunks = ingest_corpus(args.corpus, args.home)
    result["corpus"] = {"path": str(args.corpus), "chunks": chunks, "ingest_s": round(ingest_s, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        result["generation"] = generate(args, Path(tmp) / "data")
    g = result["generation"]
    print(f"{g['records']} records in {g['seconds']} s = {g['records_per_min']} records/min ({g['teacher']})")
    print("funnel:", json.dumps(g["funnel"]), "\nkinds:", json.dumps(g["kinds"]), "abstain:", g["abstain"])
    for r in g["examples"]:
        print(f"\n[{r['kind']}{', abstain' if r['abstain'] else ''}] {r['title'][:60]}\nQ: {r['question']}\nA: {r['answer']}")
    if args.select:
        result["minilm_questions_per_s"] = round(minilm_rate(), 1)
        result["selection"] = select_timing(args.select, budget=min(1000, args.select))
        s = result["selection"]
        print(f"\nselection of {s['records']} synthetic records: {s['seconds']} s (hash embeddings, instant model); "
              f"MiniLM embeds {result['minilm_questions_per_s']} questions/s")
        for at, line in s["stage_lines"]:
            print(f"  {at:7.2f} s  {line}")
    write_result("gen_data", result)


if __name__ == "__main__":
    main()
