"""``generate_data``: sample chunks, ask the teacher, assemble RAFT records, filter, split, write.

Progress is append-only (``progress.jsonl``: one line per kept record, one per finished chunk, each
flushed and fsynced), so ``kill -9`` loses at most the line being written and a rerun skips the
chunks already done. The dataset files are rebuilt from that log at the end of every run.
"""
from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path

from ragqa.config import DEFAULT_GENERATOR, Config, GeneratorConfig
from ragqa.errors import ConfigError, IndexNotFound
from finetune._assemble import Helper, WordCounter, assemble, shape_problem
from finetune._output import card, counts, split_records, write_dataset
from finetune._records import Record, from_dict
from finetune._sample import sample_chunks
from finetune._text import NearDuplicates

FORMAT = "ragqa-gen-data/1"
FUNNEL = ("chunks", "unparseable", "proposed", "surplus", "too_short", "too_long", "wrong_language",
          "near_duplicate", "unsupported", "no_distractors", "oracle_leak", "kept", "near_duplicate_across_splits")


def make_teacher(data, generator_config: GeneratorConfig):
    """The deterministic teacher, or a model (default, HF id/folder, or a served one) as teacher."""
    if data.teacher == "deterministic":
        from finetune._teacher import DeterministicTeacher

        return DeterministicTeacher()
    from ragqa.generators import load_generator
    from finetune._model_teacher import ModelTeacher

    model = DEFAULT_GENERATOR if data.teacher == "default" else data.teacher
    config = GeneratorConfig(model=model, base_url=data.teacher_url, precision=generator_config.precision,
                             max_new_tokens=data.teacher_tokens, threads=generator_config.threads)
    return ModelTeacher(load_generator(config), data.retries, data.teacher_tokens)


def claim_folder(out: Path, meta: dict) -> None:
    """Refuse a folder holding another dataset (or anything else); a rerun of the same one resumes."""
    path = out / "meta.json"
    if path.exists():
        old = json.loads(path.read_text())
        if diff := [k for k in meta if old.get(k) != meta[k]]:
            raise ConfigError(f"{out} already holds a different dataset ({', '.join(f'{k}: {old.get(k)!r}' for k in diff)})"
                              f" — pass another --out, or delete the folder to start over")
        return
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no gen-data dataset — pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=1))


class ProgressLog:
    """The append-only log of kept records and finished chunks."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> tuple[list[Record], set[str], Counter]:
        records, done, funnel = {}, set(), Counter()
        if not self.path.exists():
            return [], done, funnel
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):  # killed mid-line: drop the torn line
            data = data[:data.rfind(b"\n") + 1]
            with open(self.path, "r+b") as f:
                f.truncate(len(data))
        for line in data.decode("utf-8").splitlines():
            item = json.loads(line)
            if "record" in item:
                records.setdefault(item["record"]["id"], from_dict(item["record"], str(self.path)))
            else:
                done.add(item["done"])
                funnel.update(item["funnel"])
        return list(records.values()), done, funnel

    def write(self, item: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


class State:
    """Kept records so far: near-duplicate index, kind counts, abstention schedule."""

    def __init__(self, records: list[Record], data):
        self.records, self.data = list(records), data
        self.ids = {r.id for r in records}
        self.near = NearDuplicates(data.dedup_rouge)
        for r in records:
            self.near.add(r.question)
        self.kinds = Counter(r.kind for r in records)
        self.answers = Counter(_answer_tag(r) for r in records)  # abstain / Yes / No. / other

    @property
    def full(self) -> bool:
        return len(self.records) >= self.data.n

    def order(self, candidates: list) -> list:
        """Least represented kinds first, so the mix stays balanced."""
        return sorted(candidates, key=lambda c: self.kinds[c.kind])

    def polarity(self, cand):
        """A yes/no question asked the "no" way while "no" answers are behind, so about half are
        "no" (the seed method's judgmental split)."""
        if cand.alt is None:
            return cand
        return cand.alt if self.answers["No."] < self.answers["Yes"] else cand

    def abstain_next(self, kind: str) -> bool:
        """Keep abstentions at ``abstain_share`` of the records; definitions of common terms are often
        answered by other papers too, so they never become abstentions."""
        owed = int((len(self.records) + 1) * self.data.abstain_share) - self.answers["abstain"]
        return owed > 0 and kind != "definition"

    def add(self, record: Record) -> None:
        self.records.append(record)
        self.ids.add(record.id)
        self.near.add(record.question)
        self.kinds[record.kind] += 1
        self.answers[_answer_tag(record)] += 1


def _answer_tag(record: Record) -> str:
    if record.abstain:
        return "abstain"
    return record.answer[:3] if record.kind == "judgmental" else "other"


def chunk_records(chunk, teacher, helper: Helper, state: State, log: ProgressLog) -> Counter:
    """Ask the teacher about one chunk; keep up to ``per_chunk`` records that pass every filter."""
    data, funnel = state.data, Counter(chunks=1)
    candidates = teacher.propose(chunk, helper, data.kind_list)
    if candidates is None:
        funnel["unparseable"] += 1
        return funnel
    funnel["proposed"] += len(candidates)
    rng, kept = random.Random(f"{data.seed}:{chunk.id}"), 0
    for cand in state.order(candidates):
        cand = state.polarity(cand)
        if kept >= data.per_chunk or state.full:
            funnel["surplus"] += 1
            continue
        if _known(state, chunk, cand):
            kept += 1  # logged before a kill; not counted twice
            continue
        reason = shape_problem(cand, chunk.text, data) or ("near_duplicate" if state.near.is_near(cand.question) else "")
        record = None
        if not reason:
            record, reason = assemble(cand, chunk, helper, data, rng, state.abstain_next(cand.kind), teacher.name)
            if reason == "no_distractors":  # a one-document index: no abstentions, but the question stays
                record, reason = assemble(cand, chunk, helper, data, rng, False, teacher.name)
        if reason:
            funnel[reason] += 1
            continue
        state.add(record)
        log.write({"record": record.to_dict()})
        kept += 1
    funnel["kept"] += kept
    return funnel


def _known(state: State, chunk, cand) -> bool:
    return Record(cand.question, "", "", "", "", "", "", chunk.id).id in state.ids


def generate_data(index: str, out, config: Config | None = None, retriever=None, teacher=None,
                  progress: bool = True, command: str = "") -> dict:
    """Build a training dataset from index ``index`` into folder ``out``; returns its stats.

    ``retriever`` and ``teacher`` default to the configured ones (tests pass fakes). A rerun with
    the same settings resumes; a larger ``data.n`` extends the dataset.
    """
    from tqdm import tqdm

    from retrieval import open_retriever

    config, out = config or Config(), Path(out)
    data = config.data
    retriever = retriever or open_retriever(index, config)
    if not retriever.store.chunks:
        raise IndexNotFound(f"index {index!r} holds no passages — add documents: ragqa ingest PATH --index {index}")
    teacher = teacher or make_teacher(data, config.generator)
    claim_folder(out, {"format": FORMAT, "index": index, "teacher": teacher.name, "kinds": data.kind_list,
                       "seed": data.seed, "abstain_share": data.abstain_share, "distractors": data.distractors})
    log = ProgressLog(out / "progress.jsonl")
    records, done, funnel = log.load()
    state = State(records, data)
    helper = Helper(retriever, config.answer, getattr(teacher, "generator", None) or WordCounter())
    plan = sample_chunks(retriever.store.chunks, data.seed)
    bar = tqdm(total=data.n, initial=min(data.n, len(records)), disable=not progress, desc="records", unit="rec")
    for chunk in plan:
        if state.full or (data.max_chunks and funnel["chunks"] >= data.max_chunks):
            break
        if chunk.id in done:
            continue
        before = len(state.records)
        result = chunk_records(chunk, teacher, helper, state, log)
        log.write({"done": chunk.id, "funnel": dict(result)})
        funnel.update(result)
        bar.update(len(state.records) - before)
    bar.close()
    return finish(out, state.records, funnel, {"index": index, "teacher": teacher.name, "chunks_available": len(plan)},
                  data, command or f"ragqa gen-data --index {index} --out {out}")


def finish(out: Path, records: list[Record], funnel: Counter, info: dict, data, command: str) -> dict:
    """Split by document, write the dataset folder and its card; the stats as a dict."""
    splits, across = split_records(records, data)
    funnel["kept"] = len(records)  # from the log: a chunk cut short by a kill still counts its records
    funnel["near_duplicate_across_splits"] = across
    stats = {**info, "kinds_asked": data.kind_list, "records": sum(len(v) for v in splits.values()),
             "target": data.n, "funnel": {k: funnel.get(k, 0) for k in FUNNEL},
             "kinds": dict(Counter(r.kind for v in splits.values() for r in v)), "splits": counts(splits)}
    write_dataset(out, splits, stats, card(f"Training data from index {info['index']}", stats, command))
    return stats
