"""Ingest benchmark: ragqa vs LlamaIndex's default pipeline on the same corpus and embedder.

    python bench/ingest.py [--corpus ../shared/evalcorpus] [--skip-llamaindex]

Each measurement runs in its own process (clean peak RSS, cold caches of the Python side).
Prints a table and writes bench/results/ingest.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import EVALCORPUS, corpus_files, require_corpus, table, write_result


def worker_ragqa(files: list[Path], home: str) -> dict:
    import os
    os.environ["RAGQA_HOME"] = home
    from ingest import ingest
    from retrieval.embed import load_embedder

    t0 = time.perf_counter()
    embedder = load_embedder()
    load = time.perf_counter() - t0
    t = time.perf_counter()
    report = ingest(files, index="bench", embedder=embedder, progress=False)
    wall = time.perf_counter() - t
    return {"wall_s": wall, "model_load_s": load, "chunks": report.chunks_total, "embedded": report.embedded,
            "skipped": len(report.skipped), "truncated_chunks": report.truncated,
            "stages_s": {k: round(v, 2) for k, v in report.seconds.items()}}


def worker_llamaindex(files: list[Path], home: str) -> dict:
    from llama_index.core import Settings, SimpleDirectoryReader, StorageContext, VectorStoreIndex, load_index_from_storage
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from retrieval.embed import packaged_minilm_path

    Settings.embed_model = HuggingFaceEmbedding(model_name=str(packaged_minilm_path()))
    persist = Path(home) / "llamaindex"
    t = time.perf_counter()
    docs = SimpleDirectoryReader(input_files=[str(f) for f in files]).load_data()
    read = time.perf_counter() - t
    if persist.exists():  # the "re-ingest" case: load the persisted index and insert again
        index = load_index_from_storage(StorageContext.from_defaults(persist_dir=str(persist)))
        for d in docs:
            index.insert(d)
    else:
        index = VectorStoreIndex.from_documents(docs)
    index.storage_context.persist(str(persist))
    wall = time.perf_counter() - t
    nodes = list(index.docstore.docs.values())
    tok = Settings.embed_model._model.tokenizer
    over = sum(len(tok(n.get_content(metadata_mode="embed"))["input_ids"]) > 256 for n in nodes)
    return {"wall_s": wall, "read_s": read, "chunks": len(nodes), "truncated_chunks": over}


def run_worker(kind: str, corpus: Path, home: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--corpus", str(corpus), "--home", home],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        sys.exit(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=EVALCORPUS)
    ap.add_argument("--skip-llamaindex", action="store_true")
    ap.add_argument("--worker")
    ap.add_argument("--home")
    args = ap.parse_args()
    require_corpus(args.corpus)
    files = corpus_files(args.corpus)
    if args.worker:
        fn = worker_ragqa if args.worker == "ragqa" else worker_llamaindex
        result = fn(files, args.home)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    rows, results = [], {"corpus": str(args.corpus), "files": len(files)}
    with tempfile.TemporaryDirectory() as home:
        results["ragqa"] = first = run_worker("ragqa", args.corpus, home)
        results["ragqa_reingest"] = again = run_worker("ragqa", args.corpus, home)
    rows += [{"run": "ragqa ingest", **_row(first)}, {"run": "ragqa re-ingest (unchanged)", **_row(again)}]
    if not args.skip_llamaindex:
        with tempfile.TemporaryDirectory() as home:
            results["llamaindex"] = peer = run_worker("llamaindex", args.corpus, home)
            results["llamaindex_reingest"] = peer2 = run_worker("llamaindex", args.corpus, home)
        rows += [{"run": "llama-index default", **_row(peer)}, {"run": "llama-index re-ingest", **_row(peer2)}]
        results["speedup_vs_llamaindex"] = peer["wall_s"] / first["wall_s"]
    table(rows)
    if "speedup_vs_llamaindex" in results:
        print(f"\nragqa is {results['speedup_vs_llamaindex']:.2f}x faster than LlamaIndex's default pipeline")
    write_result("ingest", results)


def _row(r: dict) -> dict:
    return {"wall_s": r["wall_s"], "chunks": r["chunks"], "chunks_per_s": r["chunks"] / max(r["wall_s"], 1e-9),
            "embedded": r.get("embedded", r["chunks"]), "truncated_%": 100 * r["truncated_chunks"] / max(r["chunks"], 1),
            "peak_rss_mib": r["peak_rss_mib"]}


if __name__ == "__main__":
    main()
