"""Does the chat answer what the evaluation scored? The chat's path against the evaluation's, on a dev set.

    python bench/chat_path.py --index dev [--sets qasper,aragog] [--limit N] [--config FILE]

The evaluation (``ragqa eval``) answers in left-padded batches of 8 (``answer_batch``); the chat and
``ragqa ask`` stream one reply (``stream_answer``), with prompt lookup on CPUs with bf16. Both are greedy
with the same processors, so their answers should agree up to bf16 rounding (a batch's padding and a
drafted pass change the last bits of the logits, and a near-tie can flip). Per set this prints how many
answers differ and the paired difference chat − evaluation in token F1 and semantic similarity with its
95% bootstrap interval, and writes them (with every differing pair) to ``bench/results/chat_path.json``. A difference
beyond rounding is a defect of one path (e.g. prompt lookup's made-up logits read as refusals, fixed
2026-12-07: 9 of 28 QASPER answers differed, chat − eval F1 −0.015).
"""
from __future__ import annotations

import argparse
import os

from _common import ROOT, dev_set_args, write_result
from answer_quality import SETS


def compare(items, generator, retriever, config) -> dict:
    """Both paths' answers to ``items``, scored and paired."""
    from ragqa.answer import answer_batch, stream_answer
    from ragqa.evaluate import score
    from ragqa.metrics import bootstrap_ci

    docs = [it.doc if it.scoped else None for it in items]
    batched = answer_batch([it.question for it in items], generator, retriever, config=config.answer, docs=docs)
    f1, sim, differ = [], [], []
    for item, doc, evaluated in zip(items, docs, batched):
        chat = list(stream_answer(item.question, generator, retriever, config=config.answer, doc=doc))[-1]
        a = score(item, evaluated.text, retriever.embedder, evaluated.abstained)
        b = score(item, chat.text, retriever.embedder, chat.abstained)
        f1.append(b["f1"] - a["f1"])
        sim.append(b["semantic_sim"] - a["semantic_sim"])
        if chat.text != evaluated.text:
            differ.append({"id": item.id, "eval": evaluated.text, "chat": chat.text, "f1": [a["f1"], b["f1"]]})
    return {"questions": len(items), "differ": len(differ), "chat_minus_eval_f1": bootstrap_ci(f1),
            "chat_minus_eval_sim": bootstrap_ci(sim), "pairs": differ}


def main() -> None:
    args = dev_set_args(argparse.ArgumentParser(), sets="qasper,aragog").parse_args()
    os.environ.setdefault("RAGQA_HOME", str(ROOT))
    from ragqa.config import load_config
    from ragqa.generators import load_generator
    from ragqa.qa_formats import load_qa
    from retrieval import open_retriever

    config = load_config(args.config)
    generator, retriever = load_generator(config.generator), open_retriever(args.index, config)
    print(f"{generator.name}: {generator.precision}, prompt lookup {getattr(generator, 'prompt_lookup', 0)}")
    out = {}
    for name in args.sets.split(","):
        items = load_qa(SETS[name])[0][:args.limit or None]
        out[name] = compare(items, generator, retriever, config)
        f1, sim = out[name]["chat_minus_eval_f1"], out[name]["chat_minus_eval_sim"]
        print(f"{name}: {out[name]['differ']} of {len(items)} answers differ; chat − eval token F1 {f1[0]:+.3f} "
              f"[{f1[1]:+.3f}, {f1[2]:+.3f}], semantic sim. {sim[0]:+.3f} [{sim[1]:+.3f}, {sim[2]:+.3f}]")
    write_result("chat_path", {"index": args.index, "generator": generator.name, "sets": out})


if __name__ == "__main__":
    main()
