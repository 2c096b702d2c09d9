"""Evaluation: the same questions through every arm (model × retrieval on/off), scored and compared.

Writes to the output folder: ``results.jsonl`` (one line per question and arm), ``metrics.json``
(means with 95% bootstrap intervals, paired comparisons), ``report.md`` and ``metrics.png``.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ragqa import metrics as M
from ragqa.config import Config, GeneratorConfig
from ragqa.qa_formats import QAItem, load_qa

ANSWER_METRICS = ("f1", "em", "rouge_l", "bleu", "meteor", "semantic_sim")
RETRIEVAL_METRICS = ("doc_hit", "mrr")
_MARKERS = re.compile(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]")


@dataclass
class Arm:
    model: str  # 'base' or an adapter folder
    retrieval: bool

    @property
    def name(self) -> str:
        return f"{Path(self.model).name if self.model != 'base' else 'base'} · retrieval {'on' if self.retrieval else 'off'}"


def arms(config: Config) -> list[Arm]:
    models = [m.strip() for m in config.eval.models.split(",") if m.strip()]
    return [Arm(m, r == "on") for m in models for r in config.eval.retrieval.split(",")]


def evaluate(qa_path, index: str, out: str | Path, config: Config, generator_factory=None, embedder=None,
             progress: bool = True) -> dict:
    """Run every arm on the questions of ``qa_path`` and write the report into ``out``."""
    from tqdm import tqdm

    from retrieval import open_retriever
    from retrieval.embed import load_embedder

    items, problems = load_qa(qa_path)
    items = items[: config.eval.limit or None]
    embedder = embedder or load_embedder(config.embedder)
    retriever = open_retriever(index, config, embedder) if any(a.retrieval for a in arms(config)) else None
    missing = _missing_docs(items, retriever)
    factory = generator_factory or _default_factory
    meteor_skip = M.meteor_available()
    rows = []
    for arm in arms(config):
        generator = factory(_generator_config(config, arm))
        with tqdm(total=len(items), desc=arm.name, disable=not progress) as bar:
            for start in range(0, len(items), 32):
                part = items[start:start + 32]
                rows += _run_batch(part, arm, generator, retriever, config, embedder, meteor_skip)
                bar.update(len(part))
    summary = summarize(rows, arms(config), config)
    summary.update(questions=len(items), problems=problems, missing_docs=missing, index=index,
                   qa=str(qa_path), skipped_metrics=_skipped(meteor_skip, items, rows))
    write_report(Path(out), rows, summary)
    return summary


def _default_factory(cfg: GeneratorConfig):
    from ragqa.generators import load_generator

    return load_generator(cfg)


def _generator_config(config: Config, arm: Arm) -> GeneratorConfig:
    values = {**vars(config.generator), "max_new_tokens": config.eval.max_new_tokens}
    if arm.model != "base":
        values["adapter"] = arm.model
    return GeneratorConfig(**values)


def _missing_docs(items: list[QAItem], retriever) -> list[str]:
    if retriever is None:
        return []
    names = {Path(p).name for d in retriever.store.manifest.docs.values() for p in d["paths"]}
    names |= set(retriever.store.manifest.docs)
    return sorted({it.doc for it in items if it.doc and it.doc not in names})


def _run_batch(items: list[QAItem], arm: Arm, generator, retriever, config: Config, embedder, meteor_skip) -> list[dict]:
    from ragqa.answer import answer_batch

    results = answer_batch([it.question for it in items], generator, retriever if arm.retrieval else None,
                           config=config.answer, use_retrieval=arm.retrieval,
                           docs=[it.doc if it.scoped else None for it in items])
    return [_row(item, arm, result, generator, config, embedder, meteor_skip) for item, result in zip(items, results)]


def _row(item: QAItem, arm: Arm, result, generator, config: Config, embedder, meteor_skip) -> dict:
    retrieved = [s.chunk.path for s in result.sources if not s.term]
    row = {"arm": arm.name, "id": item.id, "question": item.question, "gold": item.answers, "doc": item.doc,
           "answer": result.text, "abstained": result.abstained, "retrieved": retrieved, "timings": result.timings}
    row.update(score(item, result.text, embedder, meteor_skip is None))
    if arm.retrieval and item.doc:
        row.update(doc_hit=M.doc_hit(retrieved, item.doc, config.answer.k), mrr=M.reciprocal_rank(retrieved, item.doc))
    if item.choices and hasattr(generator, "loglik"):
        row["mc_correct"] = float(_choose(item, generator, result) == item.gold_choice)
    row["correct"] = row.get("f1") is not None and row["f1"] >= config.eval.correct_f1
    return row


def score(item: QAItem, prediction: str, embedder, with_meteor: bool) -> dict:
    """Answer metrics against the best-matching gold answer (None without gold answers)."""
    golds, lang = item.answers, item.lang
    prediction = _MARKERS.sub("", prediction).strip()  # citation markers are not part of the answer
    out = {"f1": M.best(M.token_f1, prediction, golds, lang), "em": M.best(M.exact_match, prediction, golds, lang),
           "rouge_l": M.best(M.rouge_l, prediction, golds, lang), "bleu": M.best(M.bleu, prediction, golds, lang),
           "meteor": M.best(M.meteor, prediction, golds, lang) if with_meteor and lang == "en" else None,
           "semantic_sim": None}
    if golds and prediction:
        vectors = embedder.embed_batch([prediction] + golds)
        out["semantic_sim"] = float(max(vectors[1:] @ vectors[0]))
    return out


def _choose(item: QAItem, generator, result) -> int:
    """Multiple choice by log-likelihood: the option the model finds most probable after the prompt."""
    from ragqa.answer import build_messages

    messages = build_messages(item.question, result.sources, [], 0, result.retrieval)
    scores = [generator.loglik(messages, choice) for choice in item.choices]
    return max(range(len(scores)), key=scores.__getitem__)


def _skipped(meteor_skip, items, rows) -> dict:
    skipped = {"bertscore": "BERTScore needs a RoBERTa model that is not available offline here"}
    if meteor_skip:
        skipped["meteor"] = meteor_skip
    if any(it.choices for it in items) and not any("mc_correct" in r for r in rows):
        skipped["mc_accuracy"] = "the generator cannot score options (log-likelihood needs the transformers backend)"
    return skipped


def summarize(rows: list[dict], arm_list: list[Arm], config: Config) -> dict:
    """Per arm: each metric's mean and 95% interval; abstention; paired comparisons between arms."""
    e = config.eval
    per_arm = {}
    for arm in arm_list:
        mine = [r for r in rows if r["arm"] == arm.name]
        stats = {}
        for m in ANSWER_METRICS + RETRIEVAL_METRICS + ("mc_correct",):
            values = [r.get(m) for r in mine if r.get(m) is not None]
            if values:
                mean, lo, hi = M.bootstrap_ci(values, e.bootstrap, e.seed)
                stats[m] = {"mean": mean, "lo": lo, "hi": hi, "n": len(values)}
        answered = [r for r in mine if not r["abstained"]]
        stats["abstention"] = {"answered_rate": len(answered) / max(1, len(mine)),
                               "precision": sum(r["correct"] for r in answered) / max(1, len(answered)),
                               "accuracy": sum(r["correct"] for r in mine) / max(1, len(mine))}
        per_arm[arm.name] = stats
    return {"arms": per_arm, "comparisons": _comparisons(rows, arm_list, config),
            "config": {"eval": dataclasses.asdict(e), "k": config.answer.k, "model": config.generator.model}}


def _comparisons(rows: list[dict], arm_list: list[Arm], config: Config) -> list[dict]:
    """Retrieval on vs off for each model, and each tuned model vs base with the same retrieval."""
    pairs = [(a, b) for a in arm_list for b in arm_list
             if (a.model == b.model and a.retrieval and not b.retrieval)
             or (a.retrieval == b.retrieval and a.model != "base" and b.model == "base")]
    out = []
    for a, b in pairs:
        ra = {r["id"]: r for r in rows if r["arm"] == a.name}
        rb = {r["id"]: r for r in rows if r["arm"] == b.name}
        ids = [i for i in ra if i in rb]
        comp = {"a": a.name, "b": b.name, "questions": len(ids),
                "correct": M.mcnemar([ra[i]["correct"] for i in ids], [rb[i]["correct"] for i in ids])}
        for m in ("f1", "semantic_sim", "rouge_l"):
            comp[m] = M.paired_bootstrap([ra[i].get(m) for i in ids], [rb[i].get(m) for i in ids],
                                         config.eval.bootstrap, config.eval.seed)
        out.append(comp)
    return out


def write_report(out: Path, rows: list[dict], summary: dict) -> None:
    from ragqa._report import markdown, plot

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (out / "metrics.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    (out / "report.md").write_text(markdown(summary))
    plot(summary, out / "metrics.png")
