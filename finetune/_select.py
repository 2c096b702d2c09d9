"""``select_data``: MoDS selection (quality, coverage, necessity) of a generated dataset's train split.

1. Quality: a reward model when one is named, otherwise a proxy (below) — items under
   ``data.quality_threshold`` are dropped.
2. Coverage: k-center greedy over question embeddings picks ``coverage_share`` of the budget as a
   diverse seed set.
3. Necessity, with retrieval on: the base model answers every other question from its retrieved
   context, built by the answer pipeline's own context builder; the questions it fails (token F1
   to the reference under ``necessity_f1``) join the seed set, worst first, up to the budget.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ragqa.config import Config
from ragqa.errors import ConfigError, RagqaError
from finetune._assemble import Helper, context, supported
from finetune._output import card, counts, write_dataset
from finetune._records import read_jsonl
from finetune._text import token_f1

log = logging.getLogger("ragqa")


def quality_proxy(record, data) -> float:
    """Without a reward model: 0.6 x answer supported by the oracle (every quote verbatim in the
    cited source, oracle cited; abstentions count as supported), 0.2 x lengths within the bounds,
    0.2 x the teacher's self-rating scaled to 0-1 (weights renormalised when there is none)."""
    parts = [(0.6, 1.0 if record.abstain or supported(record) else 0.0)]
    q, a = len(record.question.split()), len(record.answer.split())
    ok = data.min_question_words <= q <= data.max_question_words and 1 <= a <= data.max_answer_words + 10
    parts.append((0.2, float(ok)))
    if record.rating is not None:
        parts.append((0.2, (record.rating - 1) / 4))
    return sum(w * v for w, v in parts) / sum(w for w, _ in parts)


def reward_scores(records, model_name: str, batch_size: int = 8) -> list[float]:
    """Sigmoid of a sequence-classification reward model's last logit for (question, answer)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_name)
    model = AutoModelForSequenceClassification.from_pretrained(model_name).eval()
    out = []
    for start in range(0, len(records), batch_size):
        part = records[start:start + batch_size]
        enc = tokenizer([r.question for r in part], [r.answer for r in part], truncation=True, padding=True,
                        return_tensors="pt")
        with torch.inference_mode():
            out += torch.sigmoid(model(**enc).logits[:, -1]).tolist()
    return out


def k_center_greedy(vectors: np.ndarray, k: int) -> list[int]:
    """Indices of ``k`` centres: start nearest the mean, then always the point farthest from all
    centres so far (Gonzalez 1985; radius within 2x the optimum)."""
    if k <= 0 or len(vectors) == 0:
        return []
    first = int(np.argmin(np.linalg.norm(vectors - vectors.mean(0), axis=1)))
    chosen, dist = [first], np.linalg.norm(vectors - vectors[first], axis=1)
    while len(chosen) < min(k, len(vectors)):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(vectors - vectors[nxt], axis=1))
    return chosen


def necessity_scores(records, generator, retriever, answer_config, batch_size: int = 8,
                     progress: bool = True, max_new_tokens: int = 96) -> tuple[list[float], list[str]]:
    """Token F1 of the model's retrieval-on answer to each record's reference, and the answers."""
    from tqdm import tqdm

    from ragqa.generators import greedy_replies
    from retrieval.context import build_messages

    helper = Helper(retriever, answer_config, generator)
    chats = []
    for r in records:
        passages = [h.chunk for h in retriever.search(r.question, k=answer_config.k)]
        chats.append(build_messages(r.question, context(r.question, passages, helper), [], 0, True))
    answers = []
    for start in tqdm(range(0, len(chats), batch_size), disable=not progress, desc="necessity", unit="batch"):
        answers += greedy_replies(generator, chats[start:start + batch_size], max_new_tokens)
    return [token_f1(a, r.answer) for a, r in zip(answers, records)], answers


def load_pool(data: Path) -> tuple[dict, list[str]]:
    """The dataset's splits as records, and a line per malformed record (skipped)."""
    if not (data / "train.jsonl").exists():
        raise RagqaError(f"{data}: no train.jsonl — make the dataset first: ragqa gen-data --index NAME --out {data}")
    splits, problems = {}, []
    for name in ("train", "validation", "test"):
        path = data / f"{name}.jsonl"
        records, bad = read_jsonl(path) if path.exists() else ([], [])
        splits[name], problems = records, problems + bad
    return splits, problems


def select_data(data, out, config: Config | None = None, generator=None, retriever=None, embedder=None,
                progress: bool = True, say=None, command: str = "") -> dict:
    """Select at most ``data.budget`` train records of dataset folder ``data`` into ``out``.

    Validation and test are copied unchanged. ``say`` receives one line per stage (the CLI prints
    them). ``generator``, ``retriever`` and ``embedder`` default to the configured ones.
    """
    config, data, out = config or Config(), Path(data), Path(out)
    d, say = config.data, say or log.info
    splits, problems = load_pool(data)
    pool = splits["train"]
    budget = d.budget or max(1, len(pool) // 2)
    if budget > len(pool):
        raise ConfigError(f"--budget {budget} is larger than the {len(pool)} train records of {data} — "
                          f"pass --budget {len(pool)} or less")
    _claim(out, data)
    stages = {"pool": len(pool), "malformed": len(problems)}
    scores = reward_scores(pool, d.reward_model) if d.reward_model else [quality_proxy(r, d) for r in pool]
    good = [r for r, s in zip(pool, scores) if s >= d.quality_threshold]
    stages["quality"] = len(good)
    say(f"quality: {len(good)} of {len(pool)} kept ({'reward model ' + d.reward_model if d.reward_model else 'proxy'}"
        f", threshold {d.quality_threshold})")
    seed = coverage(good, budget, d.coverage_share, config, embedder)
    stages["coverage"] = len(seed)
    say(f"coverage: {len(seed)} picked by k-center greedy over question embeddings")
    chosen = set(seed)
    rest = [i for i in range(len(good)) if i not in chosen]
    failed = []
    if rest and len(seed) < budget:
        if retriever is None:
            retriever = _retriever(data, config, embedder)
        failed = necessity(good, rest, config, generator, retriever, progress)
        chosen |= {i for _, i in failed[:budget - len(seed)]}
    stages["necessity_failed"] = len(failed)
    stages["selected"] = len(chosen)
    say(f"necessity: the base model failed {len(failed)} of {len(rest)}; {len(chosen)} selected (budget {budget})")
    selected = {**splits, "train": [good[i] for i in sorted(chosen)]}
    stats = {"selected_from": str(data), "budget": budget, "stages": stages, "problems": problems,
             "splits": counts(selected), "teacher": _meta(data).get("teacher", "?"), "index": _meta(data).get("index", "?")}
    write_dataset(out, selected, stats, card(f"MoDS selection of {data.name}", stats,
                                             command or f"ragqa select --data {data} --out {out}"))
    (out / "meta.json").write_text(json.dumps({**_meta(data), "selected_from": str(data.resolve())}, indent=1))
    return stats


def coverage(records, budget: int, share: float, config, embedder) -> list[int]:
    k = min(len(records), round(budget * share))
    if k == 0:
        return []
    if embedder is None:
        from retrieval.embed import load_embedder

        embedder = load_embedder(config.embedder)
    return k_center_greedy(np.asarray(embedder.embed_batch([r.question for r in records])), k)


def necessity(good, rest, config, generator, retriever, progress) -> list[tuple[float, int]]:
    """(F1, index) of the records the base model fails with retrieval on, worst first."""
    if generator is None:
        from ragqa.generators import load_generator

        generator = load_generator(config.generator)
    f1, _ = necessity_scores([good[i] for i in rest], generator, retriever, config.answer,
                             config.data.batch_size, progress, config.data.necessity_tokens)
    return sorted((f, i) for f, i in zip(f1, rest) if f < config.data.necessity_f1)


def _retriever(data: Path, config, embedder):
    """The index the dataset was generated from (named in its meta.json)."""
    from retrieval import open_retriever

    if not (index := _meta(data).get("index")):
        raise RagqaError(f"{data}: meta.json names no index — the necessity stage retrieves from it; "
                         "regenerate the dataset with ragqa gen-data")
    return open_retriever(index, config, embedder)


def _meta(data: Path) -> dict:
    path = data / "meta.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _claim(out: Path, data: Path) -> None:
    """Refuse an output folder that holds anything but an earlier selection from the same data."""
    if out.resolve() == data.resolve():
        raise ConfigError(f"--out {out} is the input folder — choose another, e.g. {data}-selected")
    if out.exists() and any(out.iterdir()) and _meta(out).get("selected_from") != str(data.resolve()):
        raise ConfigError(f"{out} already holds a different dataset — pass another --out, or delete it")
