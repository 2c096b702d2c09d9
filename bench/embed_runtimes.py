"""Which kernels embed fastest on this CPU, and do they keep the vectors?

    python bench/embed_runtimes.py [--index dev] [--n 320] [--repeat 2]

Embeds ``n`` chunks of an index (its stored texts, as ingest embeds them) with all-MiniLM-L6-v2 on
each runtime this machine has: torch fp32 (what ragqa uses on a CPU without bf16 units), torch bf16
autocast and torch with bf16 weights, plain and as ragqa runs them where the CPU has bf16 units (linear
layers fused with their bias and GELU, batches padded to 16 tokens; emulated elsewhere, ~6x slower),
torch dynamic int8
(``torch.ao.quantization.quantize_dynamic`` on the Linear layers), ONNX Runtime fp32 with its
transformer fusions, ONNX Runtime dynamic int8, OpenVINO fp32 (and bf16 on a bf16 CPU). Runs alternate (A B C A B C) so a
busy machine hurts all alike; the best of ``repeat`` runs is reported with the cosine of each vector
to torch fp32's (min and mean). Needs ``onnxruntime onnx`` and ``openvino`` for those rows (skipped
otherwise). Writes bench/results/embed_runtimes.json.
"""
from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, table, write_result

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def chunk_texts(index: str, n: int) -> list[str]:
    from ingest._chunk import embed_text
    from retrieval.store import IndexStore

    chunks = IndexStore.open(index).chunks
    step = max(1, len(chunks) // n)
    return [embed_text(c.title, c.section, c.text) for c in chunks[::step][:n]]


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    v = (hidden * m).sum(1) / m.sum(1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def batched(texts: list[str], tokenizer, size: int = 32):
    """Longest first, as sentence-transformers batches: little padding."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    for i in range(0, len(texts), size):
        rows = order[i:i + size]
        yield rows, tokenizer([texts[j] for j in rows], padding=True, truncation=True, max_length=256,
                              return_tensors="np")


def runner_from_session(run, tokenizer, dim: int):
    def embed(texts):
        out = np.zeros((len(texts), dim), np.float32)
        for rows, enc in batched(texts, tokenizer):
            out[rows] = mean_pool(run({k: enc[k].astype(np.int64) for k in INPUTS}), enc["attention_mask"])
        return out
    return embed


def runtimes(st_model, threads: int, folder: Path) -> dict:
    import torch

    from ragqa.config import cpu_has_bf16

    tok, dim = st_model.tokenizer, st_model.get_embedding_dimension()
    found = {"torch fp32": lambda t: st_model.encode(t, batch_size=32, normalize_embeddings=True)}
    if cpu_has_bf16():
        def bf16(t):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return st_model.encode(t, batch_size=32, normalize_embeddings=True)
        found["torch bf16 autocast"] = bf16
        from ragqa.config import EmbedderConfig
        from retrieval.embed import SentenceTransformerEmbedder

        ragqa_bf16 = SentenceTransformerEmbedder(EmbedderConfig(precision="bf16", batch_size=32))  # its own copy
        found["torch bf16 weights (ragqa: fused linear layers, padded to 16)"] = ragqa_bf16.embed_batch
        plain_bf16 = copy.deepcopy(st_model).to(torch.bfloat16)  # what ragqa ran before the fused layers
        found["torch bf16 weights, unfused"] = lambda t: plain_bf16.encode(t, batch_size=32, normalize_embeddings=True)
    quantized = torch.ao.quantization.quantize_dynamic(st_model[0].auto_model, {torch.nn.Linear}, dtype=torch.qint8)

    def torch_int8(t):
        out = np.zeros((len(t), dim), np.float32)
        with torch.no_grad():
            for rows, enc in batched(t, tok):
                feed = {k: torch.from_numpy(enc[k]) for k in INPUTS}
                out[rows] = mean_pool(quantized(**feed).last_hidden_state.numpy(), enc["attention_mask"])
        return out
    found["torch int8 dynamic"] = torch_int8
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return found
    from retrieval._onnx import OnnxEncoder, export_stages

    paths = export_stages(st_model, folder)  # the stages of ragqa's own int8 export
    for name, key in (("onnxruntime fp32 fused", "fused"), ("onnxruntime int8 dynamic (ragqa #onnx-int8)", "int8")):
        found[name] = OnnxEncoder(st_model, threads, paths[key]).embed
    try:
        import openvino as ov
    except ImportError:
        return found
    for name, hint in (("openvino fp32", "f32"), ("openvino bf16", "bf16"))[: 2 if cpu_has_bf16() else 1]:
        compiled = ov.Core().compile_model(str(paths["plain"]), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                                         "INFERENCE_PRECISION_HINT": hint})
        found[name] = runner_from_session(lambda feed, run=compiled: run(feed)[0], tok, dim)
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="dev")
    ap.add_argument("--n", type=int, default=320)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("RAGQA_HOME", str(ROOT))
    from ragqa.config import EmbedderConfig, default_threads
    from retrieval.embed import load_embedder

    threads = default_threads()
    st_model = load_embedder(EmbedderConfig(precision="fp32")).model
    texts = chunk_texts(args.index, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        found = runtimes(st_model, threads, Path(tmp))
        reference = found["torch fp32"](texts)
        best = {name: float("inf") for name in found}
        vectors = {}
        for _ in range(args.repeat):
            for name, embed in found.items():
                embed(texts[:8])  # warm: first calls allocate
                t = time.perf_counter()
                vectors[name] = embed(texts)
                best[name] = min(best[name], time.perf_counter() - t)
    rows = []
    for name in found:
        cos = (vectors[name] * reference).sum(1)
        rows.append({"runtime": name, "passages/s": len(texts) / best[name], "speed_vs_torch_fp32": best["torch fp32"] / best[name],
                     "cos_min": float(cos.min()), "cos_mean": float(cos.mean())})
    table(rows)
    write_result("embed_runtimes", {"passages": len(texts), "threads": threads, "repeat": args.repeat, "rows": rows,
                                    "load_after": os.getloadavg()[0]})


if __name__ == "__main__":
    main()
