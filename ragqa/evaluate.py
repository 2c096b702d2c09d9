"""Evaluation: the same questions through every arm (model × retrieval on/off), scored and compared.

Writes to the output folder: ``results.jsonl`` (one line per question and arm), ``metrics.json``
(means with 95% bootstrap intervals, paired comparisons), ``report.md`` and ``metrics.png``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ragqa import metrics as M
from ragqa.citations import cited_numbers, without_markers
from ragqa.config import Config, GeneratorConfig
from ragqa.errors import RagqaError
from ragqa.generators import ScoringGenerator
from ragqa.qa_formats import QAItem, load_qa
from ragqa.text import figures, stated_figures

ANSWER_METRICS = ("f1", "em", "rouge_l", "bleu", "meteor", "semantic_sim")
RETRIEVAL_METRICS = ("doc_hit", "mrr")


COPY = "copy-one-sentence"  # the yardstick arm: the retrieved sentence closest to the question, no model


@dataclass
class Arm:
    model: str  # 'base', an adapter folder, or COPY
    retrieval: bool

    @property
    def name(self) -> str:
        return f"{Path(self.model).name if self.model != 'base' else 'base'} · retrieval {'on' if self.retrieval else 'off'}"


def arms(config: Config) -> list[Arm]:
    models = [m.strip() for m in config.eval.models.split(",") if m.strip()]
    out = [Arm(m, r == "on") for m in models for r in config.eval.retrieval.split(",")]
    if config.eval.yardstick and "on" in config.eval.retrieval.split(","):
        out.append(Arm(COPY, True))
    return out


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
    meteor_skip = M.meteor_unavailable_reason()
    rows = []
    loops = {}
    for arm in arms(config):
        generator = None if arm.model == COPY else factory(_generator_config(config, arm))
        with tqdm(total=len(items), desc=arm.name, disable=not progress) as bar:
            for start in range(0, len(items), 32):
                part = items[start:start + 32]
                rows += _run_batch(part, arm, generator, retriever, config, embedder, meteor_skip, missing)
                bar.update(len(part))
        if hasattr(generator, "looped"):  # replies the loop stop cut, as each answer records them
            loops[arm.name] = sum(r["timings"].get("loop_stops", 0) for r in rows if r["arm"] == arm.name)
    summary = summarize(rows, arms(config), config)
    for name, stops in loops.items():  # a backend that cannot tell (no ``looped``) reports none
        summary["arms"][name]["loop_stops"] = stops
    summary.update(questions=len(items), problems=problems, missing_docs=missing, index=index,
                   qa=str(qa_path), skipped_metrics=_skipped(meteor_skip, items, rows))
    write_report(Path(out), rows, summary)
    return summary


def _default_factory(cfg: GeneratorConfig):
    from ragqa.generators import load_generator

    return load_generator(cfg)


def _generator_config(config: Config, arm: Arm) -> GeneratorConfig:
    # 'base' is the model without any adapter (the packaged one included): what tuning is measured against
    values = {**vars(config.generator), "max_new_tokens": config.eval.max_new_tokens or config.generator.max_new_tokens,
              "adapter": "none" if arm.model == "base" else arm.model}
    return GeneratorConfig(**values)


def _missing_docs(items: list[QAItem], retriever) -> list[str]:
    """Gold documents the index lacks, matched as retrieval matches them (id, file name, stem, title)."""
    from ragqa.errors import IndexNotFound

    if retriever is None:
        return []
    missing = set()
    for doc in {it.doc for it in items if it.doc}:
        try:
            retriever.store.find_doc(doc)
        except IndexNotFound:
            missing.add(doc)
    return sorted(missing)


def _run_batch(items: list[QAItem], arm: Arm, generator, retriever, config: Config, embedder, meteor_skip,
               missing: list[str] = ()) -> list[dict]:
    """One batch of questions through one arm. A question scoped to a document the index lacks is
    not answered unscoped: its row carries an error and counts as a failure of the arm."""
    from ragqa.answer import answer_batch

    todo = [it for it in items if not (arm.retrieval and it.scoped and it.doc in missing)]
    if arm.model == COPY:
        results = [copy_sentence(it.question, retriever, embedder, config.answer.k, _scope(it)) for it in todo]
    else:
        results = answer_batch([it.question for it in todo], generator, retriever if arm.retrieval else None,
                               config=config.answer, use_retrieval=arm.retrieval, docs=[_scope(it) for it in todo])
    done = {id(it): r for it, r in zip(todo, results)}
    return [_row(it, arm, done[id(it)], generator, config, embedder, meteor_skip) if id(it) in done
            else _missing_row(it, arm) for it in items]


def _scope(item: QAItem) -> str | None:
    return item.doc if item.scoped else None


def _missing_row(item: QAItem, arm: Arm) -> dict:
    return {"arm": arm.name, "id": item.id, "question": item.question, "gold": item.answers, "doc": item.doc,
            "answer": "", "abstained": True, "retrieved": [], "timings": {}, "correct": False, "f1": 0.0,
            "error": f"document {item.doc!r} is not in the index: the question is scoped to it"}


def copy_sentence(question: str, retriever, embedder, k: int, doc: str | None = None):
    """The yardstick: the sentence of the top-``k`` passages closest to the question, copied verbatim."""
    from ragqa.answer import Answer
    from retrieval.context import Source, best_sentences, prompt_text

    hits = retriever.search(question, k=k, doc=doc)
    sources = [Source(n, h.chunk, prompt_text(h.chunk.text), h.score, h.dense) for n, h in enumerate(hits, 1)]
    best = best_sentences(question, sources, embedder, 1)
    return Answer(question, best[0][1] if best else "", sources=sources, model=COPY)


def _row(item: QAItem, arm: Arm, result, generator, config: Config, embedder, meteor_skip) -> dict:
    retrieved = [s.chunk.path for s in result.sources if not s.term]
    row = {"arm": arm.name, "id": item.id, "question": item.question, "gold": item.answers, "doc": item.doc,
           "answer": result.text, "abstained": result.abstained, "retrieved": retrieved, "timings": result.timings}
    if arm.retrieval and arm.model != COPY and not result.abstained:
        shown = {s.n for s in result.sources}
        row["cites_source"] = any(c.n in shown for c in result.citations)  # lead quote included
        row["model_cites_source"] = bool(cited_numbers(result.reply) & shown)  # the model's own text
        # figures the reply states that neither the question nor any retrieved passage (whole) holds
        given = figures("\n".join([item.question, *(s.chunk.text for s in result.sources)]))
        row["unsupported_figures"] = sorted(stated_figures(without_markers(result.reply)) - given)
    row.update(score(item, result.text, embedder, meteor_skip is None))
    if arm.retrieval and item.doc:
        row.update(doc_hit=M.doc_hit(retrieved, item.doc, config.answer.k), mrr=M.reciprocal_rank(retrieved, item.doc))
    if item.choices and isinstance(generator, ScoringGenerator):
        row["mc_correct"] = float(_choose(item, generator, result) == item.gold_choice)
    row["correct"] = row.get("f1") is not None and row["f1"] >= config.eval.correct_f1
    return row


def score(item: QAItem, prediction: str, embedder, with_meteor: bool) -> dict:
    """Answer metrics against the best-matching gold answer (None without gold answers)."""
    golds, lang = item.answers, item.lang
    prediction = without_markers(prediction).strip()  # citation markers are not part of the answer
    if item.kind == "yes_no":  # QASPER's protocol: the yes or no the answer gives, by exact match
        prediction = M.yes_no(prediction)
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
    from retrieval.context import build_messages

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
        cited = [r["cites_source"] for r in answered if "cites_source" in r]
        if cited:  # answers citing a source that exists: with the quote, and in the model's own words
            stats["citations"] = {"cite_rate": sum(cited) / len(cited),
                                  "model_cite_rate": sum(r["model_cites_source"] for r in answered
                                                         if "cites_source" in r) / len(cited),
                                  "unsupported_figure_rate": sum(bool(r.get("unsupported_figures")) for r in answered
                                                                 if "cites_source" in r) / len(cited)}
        per_arm[arm.name] = stats
    return {"arms": per_arm, "comparisons": _comparisons(rows, arm_list, config),
            "config": {"eval": dataclasses.asdict(e), "k": config.answer.k, "model": config.generator.model}}


def _comparisons(rows: list[dict], arm_list: list[Arm], config: Config) -> list[dict]:
    """Retrieval on vs off for each model, each tuned model vs base with the same retrieval, and every
    model with retrieval vs the copy-one-sentence yardstick."""
    models = [a for a in arm_list if a.model != COPY]
    pairs = [(a, b) for a in models for b in models
             if (a.model == b.model and a.retrieval and not b.retrieval)
             or (a.retrieval == b.retrieval and a.model != "base" and b.model == "base")]
    pairs += [(a, b) for a in models for b in arm_list if a.retrieval and b.model == COPY]
    by_arm = _by_arm(rows)
    return [{"a": a.name, "b": b.name, **_paired(by_arm.get(a.name, {}), by_arm.get(b.name, {}),
                                                 config.eval.bootstrap, config.eval.seed)} for a, b in pairs]


def _paired(ra: dict, rb: dict, bootstrap: int, seed: int) -> dict:
    """Rows ``ra`` against rows ``rb`` (question id -> row) on the questions both hold: an exact McNemar
    test on correct answers and a paired bootstrap of each score's difference."""
    ids = [i for i in ra if i in rb]
    comp = {"questions": len(ids),
            "correct": M.mcnemar([ra[i]["correct"] for i in ids], [rb[i]["correct"] for i in ids])}
    for m in ("f1", "semantic_sim", "rouge_l"):
        comp[m] = M.paired_bootstrap([ra[i].get(m) for i in ids], [rb[i].get(m) for i in ids], bootstrap, seed)
    return comp


def compare_runs(new: str | Path, old: str | Path, arm_new: str | None = None, arm_old: str | None = None,
                 bootstrap: int = 1000, seed: int = 0) -> list[dict]:
    """Paired differences ``new`` − ``old`` between two ``ragqa eval`` report folders on the questions both
    answered: did a change of config, index, prompt or adapter help? One comparison per arm the two share
    by name, or the one pair named by ``arm_new``/``arm_old`` (e.g. an adapter against ``auto``)."""
    a, b = _arm_rows(Path(new)), _arm_rows(Path(old))
    pairs = [(arm_new or arm_old, arm_old or arm_new)] if arm_new or arm_old else [(x, x) for x in a if x in b]
    if not pairs:
        raise RagqaError(f"{new} and {old} share no arm (arms: {', '.join(a)} / {', '.join(b)}) — "
                         "name the two with --arm-new and --arm-old")
    for folder, rows, arm in [(new, a, x) for x, _ in pairs] + [(old, b, y) for _, y in pairs]:
        if arm not in rows:
            raise RagqaError(f"{folder}: no arm {arm!r} (it has: {', '.join(rows)}) — pick one of those")
    return [_run_pair(x, a[x], y, b[y], bootstrap, seed) for x, y in pairs]


def _run_pair(x: str, ra: dict, y: str, rb: dict, bootstrap: int, seed: int) -> dict:
    """``_paired`` for arm ``x`` of one run against arm ``y`` of another, with the answers that changed and
    each score's mean in both runs over the questions compared."""
    ids = [i for i in ra if i in rb]
    if not ids:
        raise RagqaError(f"{x} and {y} share no question — compare runs of the same question set")
    comp = {"new": x, "old": y, **_paired(ra, rb, bootstrap, seed)}
    comp["changed"] = sum(ra[i]["answer"] != rb[i]["answer"] for i in ids)
    for m in ("f1", "semantic_sim", "rouge_l"):
        both = [(ra[i][m], rb[i][m]) for i in ids if ra[i].get(m) is not None and rb[i].get(m) is not None]
        comp[m].update(new=sum(p for p, _ in both) / max(1, len(both)), old=sum(q for _, q in both) / max(1, len(both)))
    return comp


def _arm_rows(folder: Path) -> dict[str, dict[str, dict]]:
    """A report folder's ``results.jsonl`` as arm -> question id -> row."""
    path = folder / "results.jsonl" if folder.is_dir() else folder
    if not path.is_file():
        raise RagqaError(f"{folder}: no results.jsonl — give a folder written by `ragqa eval --out`")
    rows = []
    for n, line in enumerate(path.open(encoding="utf-8"), 1):
        try:
            rows += [json.loads(line)] if line.strip() else []
        except json.JSONDecodeError:
            raise RagqaError(f"{path}:{n}: not JSON — the file is damaged; run `ragqa eval` again") from None
    return _by_arm(rows)


def _by_arm(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """Result rows as arm -> question id -> row."""
    arms: dict[str, dict[str, dict]] = {}
    for row in rows:
        arms.setdefault(row["arm"], {})[row["id"]] = row
    return arms


def write_report(out: Path, rows: list[dict], summary: dict) -> None:
    from ragqa._report import markdown, plot

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (out / "metrics.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    (out / "report.md").write_text(markdown(summary))
    plot(summary, out / "metrics.png")
