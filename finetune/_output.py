"""The dataset folder: document-level split, JSONL copies, a ``datasets`` DatasetDict and its card.

Layout of ``data/NAME/``::

    dataset_dict.json, train/, validation/, test/   DatasetDict.save_to_disk (datasets.load_from_disk)
    train.jsonl, validation.jsonl, test.jsonl        the same records, one JSON object per line
    README.md                                        dataset card: counts per kind, filter funnel, teacher
    stats.json                                       the same numbers for programs
"""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from finetune._text import NearDuplicates

SPLITS = ("train", "validation", "test")


def split_documents(doc_ids: list[str], validation: float, test: float, seed: int = 0) -> dict[str, str]:
    """Each document goes to exactly one split. With 5+ documents validation and test get at least
    one each; with fewer, everything is train (one paper cannot be both learned and held out)."""
    docs = sorted(set(doc_ids))
    random.Random(seed).shuffle(docs)
    enough = len(docs) >= 5
    n_test = max(round(len(docs) * test), int(test > 0)) if enough else 0
    n_val = max(round(len(docs) * validation), int(validation > 0)) if enough else 0
    split = {d: "test" for d in docs[:n_test]}
    split.update({d: "validation" for d in docs[n_test:n_test + n_val]})
    split.update({d: "train" for d in docs[n_test + n_val:]})
    return split


def split_records(records: list, config) -> tuple[dict[str, list], int]:
    """Records by split (by their document), near-duplicate questions across splits removed.

    A validation or test question close to a train question (or a test one to a validation one)
    would measure recall of the training set, not answering; it is dropped and counted.
    """
    where = split_documents([r.doc_id for r in records], config.validation_share, config.test_share, config.seed)
    splits = {s: [r for r in records if where[r.doc_id] == s] for s in SPLITS}
    seen, dropped = NearDuplicates(config.dedup_rouge), 0
    for name in SPLITS:
        kept = [r for r in splits[name] if name == "train" or not seen.is_near(r.question)]
        dropped += len(splits[name]) - len(kept)
        for r in kept:
            seen.add(r.question)
        splits[name] = kept
    return splits, dropped


def _features():
    from datasets import Features, Sequence, Value

    s = Value("string")
    source = {"n": Value("int64"), "chunk_id": s, "title": s, "label": s, "text": s, "term": s}
    return Features({"id": s, "question": s, "answer": s, "kind": s, "teacher": s, "doc_id": s, "source": s,
                     "title": s, "oracle_id": s, "oracle_ids": Sequence(s), "distractor_ids": Sequence(s),
                     "abstain": Value("bool"), "quote": s, "rating": Value("float64"),
                     "sources": [source], "messages": [{"role": s, "content": s}]})


def write_dataset(out: Path, splits: dict[str, list], stats: dict, card: str) -> None:
    """JSONL copies, the DatasetDict, the card and stats.json (rewritten whole on every run)."""
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # three saving bars per run would bury our own
    out.mkdir(parents=True, exist_ok=True)
    features = _features()
    for name, records in splits.items():
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    # from columns, not from_list: an empty split (few documents) must still carry every column
    dd = DatasetDict({name: Dataset.from_dict({k: [r.row()[k] for r in records] for k in features}, features=features)
                      for name, records in splits.items()})
    # an empty split saved with the default zero shards cannot be loaded back (datasets 5.2)
    dd.save_to_disk(str(out), num_shards={name: 1 for name, records in splits.items() if not records})
    (out / "stats.json").write_text(json.dumps(stats, indent=1, ensure_ascii=False))
    (out / "README.md").write_text(card, encoding="utf-8")


def counts(splits: dict[str, list]) -> dict:
    """Records, documents, kinds and abstentions per split."""
    out = {}
    for name, records in splits.items():
        out[name] = {"records": len(records), "documents": len({r.doc_id for r in records}),
                     "abstain": sum(r.abstain for r in records),
                     "kinds": dict(sorted(Counter(r.kind for r in records).items())),
                     "sources": sorted({Path(r.source).name for r in records if r.source})}
    return out


def card(title: str, stats: dict, command: str) -> str:
    """The README of a dataset folder: what it is, how it was made, the numbers, how to load it."""
    lines = [f"# {title}", "", f"Made by `{command}`.", "",
             f"Index: `{stats.get('index', '?')}` · teacher: `{stats.get('teacher', '?')}`", "",
             "| split | records | documents | abstain | " + " | ".join(_kinds(stats)) + " |",
             "|---" * (4 + len(_kinds(stats))) + "|"]
    for name, c in stats["splits"].items():
        lines.append(f"| {name} | {c['records']} | {c['documents']} | {c['abstain']} | "
                     + " | ".join(str(c["kinds"].get(k, 0)) for k in _kinds(stats)) + " |")
    lines += ["", "## Source documents", ""]  # what a model tuned on this data has seen
    lines += [f"- {name}: " + ", ".join(c.get("sources", [])) for name, c in stats["splits"].items()]
    for key in ("funnel", "stages"):
        if stats.get(key):
            lines += ["", f"## {'Filter funnel' if key == 'funnel' else 'Selection stages'}", ""]
            lines += [f"- {k}: {v}" for k, v in stats[key].items()]
    lines += ["", "## Use", "", "```python", "from datasets import load_from_disk",
              "ds = load_from_disk(\"<this folder>\")  # splits train/validation/test; `messages` is chat-format SFT input",
              "```", "", "Splits are by source document: no document is in two splits.", ""]
    return "\n".join(lines)


def _kinds(stats: dict) -> list[str]:
    return sorted({k for c in stats["splits"].values() for k in c["kinds"]})
