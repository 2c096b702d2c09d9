"""Answer speed, memory and grounding of the default model, per CPU precision option.

    python bench/answer.py [--options fp32:0,fp32,bf16,int8,nf4,bf16/3] [--questions 4] [--aragog 20]

For each precision, a fresh process loads SmolLM2-135M-Instruct and answers questions about the
user guide with k=3 passages: time to first token, decode tokens/s, the whole reply's seconds (what a
beam search, which comes whole, costs), peak RSS, bytes of weights, and the memory-bandwidth bound
(read bandwidth / weight bytes read per token). Also calibrates the
abstention threshold (best cosine of answerable vs off-topic questions) and, when
../shared/evalcorpus is present, the share of 20 ARAGOG dev answers whose primary source is the
gold paper. Writes bench/results/answer.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _common import EVALCORPUS, ROOT, table, write_result

GUIDE = ROOT / "ragqa" / "guide"
QUESTIONS = ["What happens if ingestion is interrupted?", "Which file types can be ingested?",
             "How are running headers and footers removed?", "What does ragqa do with an encrypted PDF?",
             "Is the same content stored twice when it has two paths?"]
OFF_TOPIC = ["Who won the football world cup in 1998?", "What is a good recipe for banana bread?",
             "How tall is Mount Everest?", "What is the capital of Australia?", "Who painted the Mona Lisa?",
             "How do I fix a flat bicycle tire?", "Which planet has the most moons?"]


def bandwidth_gbs(threads: int = 2) -> float:
    """Read bandwidth of a matrix-vector product over 512 MB of float32 (the decode access pattern)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    m = torch.from_numpy(np.random.default_rng(0).standard_normal((8192, 16384), dtype=np.float32))
    v = torch.ones(16384)
    m @ v
    start = time.perf_counter()
    for _ in range(10):
        m @ v
    return 10 * m.numel() * 4 / (time.perf_counter() - start) / 1e9


def worker(option: str, n_questions: int) -> dict:
    """Runs in its own process so peak RSS belongs to this option alone ("fp32", "fp32:0" = no lookup,
    "bf16/3" = 3 beams)."""
    import resource

    from ingest import ingest
    from ragqa.answer import answer
    from ragqa.config import AnswerConfig, GeneratorConfig
    from ragqa.generators import load_generator
    from retrieval import open_retriever

    setting, _, beams = option.partition("/")
    precision, _, lookup = setting.partition(":")
    started = time.perf_counter()
    gen = load_generator(GeneratorConfig(precision=precision, max_new_tokens=64, num_beams=int(beams or 1),
                                         prompt_lookup=int(lookup or GeneratorConfig.prompt_lookup)))
    load_s = time.perf_counter() - started
    weights = sum(p.numel() * p.element_size() for p in gen.model.parameters())
    weights += sum(b.numel() * b.element_size() for b in gen.model.buffers())
    if precision == "int8":  # dynamic-quantized Linear weights are packed params, not parameters
        weights = _int8_bytes(gen.model)
    ingest([GUIDE], index="bench-answer", progress=False)
    r = open_retriever("bench-answer")
    answer(QUESTIONS[0], gen, r, config=AnswerConfig(k=3))  # warm-up: first call pays lazy init
    runs = [answer(q, gen, r, config=AnswerConfig(k=3)) for q in QUESTIONS[:n_questions]]
    return {"option": option, "lookup": gen.prompt_lookup, "load_s": round(load_s, 2), "weights_mb": round(weights / 1e6, 1),
            "prompt_tokens": statistics.median(a.timings["prompt_tokens"] for a in runs),
            "ttft_s": statistics.median(a.timings["ttft_s"] for a in runs),
            "decode_tok_s": statistics.median(a.timings["tokens_per_s"] or 0 for a in runs),
            "reply_s": statistics.median(a.timings["total_s"] for a in runs),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "answers": [a.text for a in runs]}


def _int8_bytes(model) -> int:
    import torch

    total = 0
    for module in model.modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):  # int8 weights, fp32 bias
            total += module.weight().numel() + (module.bias().numel() * 4 if module.bias() is not None else 0)
        elif not list(module.children()) and not hasattr(module, "_packed_params"):
            total += sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))
    return total


def token_f1(a: str, b: str) -> float:
    from collections import Counter

    ta, tb = Counter(a.lower().split()), Counter(b.lower().split())
    common = sum((ta & tb).values())
    return 0.0 if not common else 2 * common / (sum(ta.values()) + sum(tb.values()))


def calibrate() -> dict:
    from ragqa.config import load_config
    from retrieval import open_retriever

    r = open_retriever("bench-answer", load_config())
    best = lambda q: max((h.dense for h in r.search(q, k=3) if h.dense is not None), default=-1)  # noqa: E731
    answerable, off = [round(best(q), 3) for q in QUESTIONS], [round(best(q), 3) for q in OFF_TOPIC]
    return {"answerable_min": min(answerable), "off_topic_max": max(off), "answerable": answerable, "off_topic": off}


def aragog(n: int) -> dict:
    """Share of ARAGOG dev answers whose primary source (first sound citation, else evidence) is the gold paper."""
    qa = sorted(EVALCORPUS.rglob("aragog_dev_qa.jsonl")) if EVALCORPUS.is_dir() else []
    if not qa:
        return {"skipped": f"{EVALCORPUS} absent: ARAGOG dev questions unavailable"}
    from ingest import ingest
    from ragqa.answer import answer
    from ragqa.generators import load_generator
    from retrieval import open_retriever

    rows = [json.loads(line) for line in qa[0].open() if line.strip()][:n]
    pdfs = [p for p in EVALCORPUS.rglob("*.pdf") if p.name in {r["source_pdf"] for r in rows}]
    ingest(pdfs, index="bench-aragog", progress=False)
    r, gen = open_retriever("bench-aragog"), load_generator()
    results = [answer(row["question"], gen, r) for row in rows]
    primary = [a.primary_source is not None and a.primary_source.chunk.path.endswith(row["source_pdf"])
               for a, row in zip(results, rows)]
    cited = [bool(a.citations) for a in results]
    return {"questions": len(rows), "primary_source_is_gold": sum(primary) / len(rows),
            "answers_with_citations": sum(cited) / len(rows),
            "unverified_quotes_shown_as_verified": sum(_false_verified(a) for a in results)}


def _false_verified(result) -> int:
    """Quotes marked verified that are not, after normalisation, in the text of the source they cite."""
    from ragqa.citations import normalize

    return sum(c.status == "verified quote" and not all(
        normalize(q) in normalize(result.source(c.n).chunk.text) for q in c.quote.split(" … "))
        for c in result.citations)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--options", default="fp32:0,fp32,bf16,int8,nf4,bf16/3",
                    help="precisions, each with :N for N prompt-lookup tokens (default 10; :0 = off) and /B for "
                         "B beams (default 1)")
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--aragog", type=int, default=20)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.questions)))
        return
    threads = int(os.environ.get("RAGQA_THREADS", os.cpu_count() or 1))
    gbs = bandwidth_gbs(threads)
    print(f"matrix-vector read bandwidth, {threads} threads: {gbs:.1f} GB/s")
    rows = []
    for option in args.options.split(","):
        proc = subprocess.run([sys.executable, __file__, "--worker", option, "--questions", str(args.questions)],
                              capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            rows.append({"option": option, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:160]})
            continue
        row = json.loads(line[7:])
        row["bound_tok_s"] = round(gbs * 1e9 / (row["weights_mb"] * 1e6), 1)
        row["of_bound"] = round(row["decode_tok_s"] / row["bound_tok_s"], 2)
        rows.append(row)
    reference = next((r["answers"] for r in rows if r.get("option", "").startswith("fp32") and "answers" in r), None)
    for r in rows:  # output quality: agreement with fp32 greedy answers
        if reference and "answers" in r:
            r["same_as_fp32"] = sum(a == b for a, b in zip(r["answers"], reference)) / len(reference)
            r["f1_vs_fp32"] = round(statistics.mean(token_f1(a, b) for a, b in zip(r["answers"], reference)), 3)
    table([{k: v for k, v in r.items() if k != "answers"} for r in rows])
    cal = calibrate()
    print(f"abstention: answerable best cosine >= {cal['answerable_min']}, off-topic <= {cal['off_topic_max']}")
    grounding = aragog(args.aragog)
    print(f"ARAGOG: {grounding}")
    write_result("answer", {"bandwidth_gbs": round(gbs, 1), "threads": threads, "options": rows,
                            "abstention": cal, "aragog": grounding})


if __name__ == "__main__":
    main()
