"""Ingest benchmark: ragqa vs LlamaIndex, default and configured to do the same job, same corpus and embedder.

    python bench/ingest.py [--corpus ../shared/evalcorpus] [--skip-llamaindex] [--embedder MODEL]

``--embedder`` sets ragqa's embedder (e.g. ``sentence-transformers/all-MiniLM-L6-v2#onnx-int8``, the
opt-in int8 runtime); the LlamaIndex pipelines always use MiniLM in torch fp32.

Three pipelines, each ingesting the corpus and then re-ingesting it unchanged:
- ragqa (``ingest()``, all defaults);
- LlamaIndex's default (SimpleDirectoryReader + VectorStoreIndex.from_documents: 1024-token chunks that
  MiniLM truncates to 256, re-ingest by insert);
- LlamaIndex configured for the same job: ``SentenceSplitter`` with ragqa's window and overlap, measured
  in the MiniLM tokenizer with the metadata it embeds, inside an ``IngestionPipeline`` with a docstore and
  ``DocstoreStrategy.UPSERTS`` (stable ids per file), the same batch size and threads.

Each measurement runs in its own process (clean peak RSS, cold caches of the Python side).
Prints a table and writes bench/results/ingest.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import EVALCORPUS, corpus_files, require_corpus, table, write_result


def worker_ragqa(files: list[Path], home: str) -> dict:
    os.environ["RAGQA_HOME"] = home
    from ingest import ingest
    from retrieval.store import IndexStore

    t0 = time.perf_counter()
    embedder = _ragqa_embedder()
    load = time.perf_counter() - t0
    t = time.perf_counter()
    report = ingest(files, index="bench", embedder=embedder, progress=False)
    wall = time.perf_counter() - t
    lengths = [c.tokens for c in IndexStore.open("bench").chunks] if report.embedded else []
    return {"wall_s": wall, "model_load_s": load, "chunks": report.chunks_total, "embedded": report.embedded,
            "skipped": len(report.skipped), "truncated_chunks": report.truncated,
            "tokens_embedded": sum(min(n, embedder.max_tokens) for n in lengths), "tokens_offered": sum(lengths),
            "stages_s": {k: round(v, 2) for k, v in report.seconds.items()}}


def worker_llamaindex(files: list[Path], home: str) -> dict:
    """LlamaIndex's default pipeline, as a user meets it (only the threads set as ragqa's)."""
    from llama_index.core import Settings, SimpleDirectoryReader, StorageContext, VectorStoreIndex, load_index_from_storage

    embed, tok = _hf_embedding()  # LlamaIndex's own batch size
    Settings.embed_model = embed
    counter = _count_embeddings(embed)
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
    texts = [n.get_content(metadata_mode="embed") for n in nodes]
    return {"wall_s": wall, "read_s": read, "chunks": len(nodes), "embedded": counter[0], **_token_figures(tok, texts)}


def worker_llamaindex_configured(files: list[Path], home: str) -> dict:
    """LlamaIndex doing ragqa's job: every token embedded, unchanged files skipped on re-ingest."""
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.core.vector_stores import SimpleVectorStore

    from ragqa.config import EmbedderConfig, IngestConfig

    embed, tok = _hf_embedding(batch_size=EmbedderConfig().batch_size)  # ragqa's batch
    config = IngestConfig()
    persist = Path(home) / "llamaindex-configured"
    t = time.perf_counter()
    reader = SimpleDirectoryReader(input_files=[str(f) for f in files], filename_as_id=True)
    docs = reader.load_data()
    for d in docs:  # embed the file name as ragqa embeds the title, nothing else of the metadata
        d.excluded_embed_metadata_keys = [k for k in d.metadata if k != "file_name"]
    read = time.perf_counter() - t
    # the window less [CLS] and [SEP], counted with the metadata the splitter prepends
    splitter = SentenceSplitter(chunk_size=config.chunk_tokens - 2, chunk_overlap=config.overlap_tokens,
                                tokenizer=tok.tokenize)
    pipeline = IngestionPipeline(transformations=[splitter, embed], docstore=SimpleDocumentStore(),
                                 vector_store=SimpleVectorStore(), docstore_strategy=DocstoreStrategy.UPSERTS)
    if persist.exists():  # re-ingest: the docstore decides what changed, the vectors stay in their store
        pipeline.load(str(persist))
        pipeline.vector_store = SimpleVectorStore.from_persist_path(str(persist / "vectors.json"))
    counter = _count_embeddings(embed)
    nodes = pipeline.run(documents=docs)
    pipeline.persist(str(persist))
    pipeline.vector_store.persist(str(persist / "vectors.json"))
    wall = time.perf_counter() - t
    stored = pipeline.vector_store.data.embedding_dict
    texts = [n.get_content(metadata_mode="embed") for n in nodes]
    return {"wall_s": wall, "read_s": read, "chunks": len(stored), "embedded": counter[0],
            **_token_figures(tok, texts)}


def _hf_embedding(batch_size: int | None = None):
    import torch
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from ragqa.config import default_threads
    from retrieval.embed import packaged_minilm_path

    torch.set_num_threads(default_threads())  # what ragqa's embedder uses
    extra = {"embed_batch_size": batch_size} if batch_size else {}
    embed = HuggingFaceEmbedding(model_name=str(packaged_minilm_path()), device="cpu", **extra)
    return embed, embed._model.tokenizer


def _count_embeddings(embed) -> list[int]:
    """Texts actually embedded (a re-ingest that skips unchanged files embeds none)."""
    counter, inner = [0], embed._get_text_embeddings

    def counting(texts):
        counter[0] += len(texts)
        return inner(texts)

    object.__setattr__(embed, "_get_text_embeddings", counting)
    return counter


def _token_figures(tok, embedded_texts: list[str]) -> dict:
    """Tokens embedded (within the 256-token window) and chunks over the window."""
    lengths = [len(ids) for ids in tok(embedded_texts, add_special_tokens=True)["input_ids"]] if embedded_texts else []
    return {"tokens_embedded": sum(min(n, 256) for n in lengths), "tokens_offered": sum(lengths),
            "truncated_chunks": sum(n > 256 for n in lengths)}


def run_worker(kind: str, corpus: Path, home: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--corpus", str(corpus), "--home", home],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        sys.exit(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker_warm(files: list[Path], home: str) -> dict:
    """Load ragqa's embedder once in ``home``: a one-time conversion (the int8 export) is then cached
    and stays out of the measured run's time and peak memory."""
    os.environ["RAGQA_HOME"] = home
    _ragqa_embedder()
    return {}


def _ragqa_embedder():
    """ragqa's embedder: ``--embedder`` (passed to the workers as RAGQA_BENCH_EMBEDDER), else the default."""
    from ragqa.config import EmbedderConfig
    from retrieval.embed import load_embedder

    model = os.environ.get("RAGQA_BENCH_EMBEDDER")
    return load_embedder(EmbedderConfig(model=model) if model else None)


WORKERS = {"warm": worker_warm, "ragqa": worker_ragqa, "llamaindex": worker_llamaindex, "llamaindex-configured": worker_llamaindex_configured}
NAMES = {"ragqa": "ragqa", "llamaindex": "llama-index default", "llamaindex-configured": "llama-index configured"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=EVALCORPUS)
    ap.add_argument("--skip-llamaindex", action="store_true")
    ap.add_argument("--embedder", help="ragqa's embedder (default: the configured one)")
    ap.add_argument("--worker")
    ap.add_argument("--home")
    args = ap.parse_args()
    require_corpus(args.corpus)
    files = corpus_files(args.corpus)
    if args.embedder:
        os.environ["RAGQA_BENCH_EMBEDDER"] = args.embedder  # the ragqa workers inherit it
        NAMES["ragqa"] = f"ragqa ({args.embedder.rsplit('/', 1)[-1]})"
    if args.worker:
        result = WORKERS[args.worker](files, args.home)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    kinds = ["ragqa"] if args.skip_llamaindex else [k for k in WORKERS if k != "warm"]
    rows, results = [], {"corpus": str(args.corpus), "files": len(files), "load_before": os.getloadavg()[0]}
    for kind in kinds:
        with tempfile.TemporaryDirectory() as home:
            if kind == "ragqa":
                run_worker("warm", args.corpus, home)
            results[kind] = first = run_worker(kind, args.corpus, home)
            results[f"{kind}_reingest"] = again = run_worker(kind, args.corpus, home)
        rows += [{"run": NAMES[kind], **_row(first)}, {"run": f"{NAMES[kind]}, re-ingest unchanged", **_row(again)}]
    results["load_after"] = os.getloadavg()[0]
    table(rows)
    for kind in kinds[1:]:
        results[f"speedup_vs_{kind}"] = ratio = results[kind]["wall_s"] / results["ragqa"]["wall_s"]
        print(f"ragqa is {ratio:.2f}x as fast as {NAMES[kind]}")
    write_result("ingest" + ("_" + args.embedder.rsplit("#", 1)[-1].replace("-", "_") if args.embedder else ""), results)


def _row(r: dict) -> dict:
    return {"wall_s": r["wall_s"], "chunks": r["chunks"], "embedded": r["embedded"],
            "tokens_embedded": r["tokens_embedded"], "embedded_%": 100 * r["tokens_embedded"] / max(r["tokens_offered"], 1),
            "tokens/s": r["tokens_embedded"] / max(r["wall_s"], 1e-9) if r["embedded"] else 0.0,
            "truncated_%": 100 * r["truncated_chunks"] / max(r["chunks"], 1), "peak_rss_mib": r["peak_rss_mib"]}


if __name__ == "__main__":
    main()
