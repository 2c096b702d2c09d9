"""Rejection-sampled replies: the model's own answers as training targets, kept when they are right.

The teachers' targets quote one sentence of the oracle. At answer time the pipeline already quotes
a retrieved sentence with every answer (``answer.lead_quote``), so a model trained to quote learns to
say that sentence again, or further ones; measured on ARAGOG dev,
such a tuned SmolLM2 lost 0.029 semantic similarity to the untuned one, whose own words explain.
Rejection-sampling fine-tuning (Yuan et al. 2023, "Scaling relationship on learning mathematical
reasoning with LLMs"; ReST, Gulcehre et al. 2023) keeps the model's voice and teaches it to be
right: each train and validation record's prompt is answered by the model (greedy and sampled),
each reply is shaped as answer time shapes it (``ragqa.reply.shape``, the record's quote as the
quote), and the best *right* reply becomes the target:

- yes/no questions: the reply's verdict is the record's;
- numeric questions: the reply holds the record's number;
- and the reply's cosine to the oracle's quoted sentence is at least ``data.reply_min_similarity``
  (a verdict alone passes); the highest wins.

The target cites the oracle's source (``cite``). A record with no right reply is dropped (counted); abstention records and the test split keep their
targets (the test split's references stay the teacher's quotes).
"""
from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ragqa.config import AnswerConfig, Config
from ragqa.errors import ConfigError
from ragqa.reply import held_words, reply_sentences, shape, stated_verdict
from ragqa.text import figures
from finetune._output import card, counts, write_dataset
from finetune._select import load_pool

_ENDED = re.compile(r"[.!?。！？]['\"”’)]*$")


def best_reply(record, replies: list[str], embedder, min_similarity: float,
               answer: AnswerConfig | None = None) -> tuple[str, str]:
    """The best right reply to ``record`` among ``replies`` as answer time would show it, and ''; or
    '' and why none was right."""
    shaped = [s for s in dict.fromkeys(shaped_replies(record, replies, answer or AnswerConfig())) if s]
    if not shaped:
        return "", "empty"
    verdicts = judge(record, shaped, embedder, min_similarity)
    right = [i for i, (why, _) in enumerate(verdicts) if not why]
    if right:  # the closest to the oracle; on a tie, the first
        return shaped[max(right, key=lambda i: verdicts[i][1])], ""
    reasons = {why for why, _ in verdicts}  # right verdict or number but far from the oracle says most
    return "", "far_from_oracle" if "far_from_oracle" in reasons else verdicts[0][0]


def shaped_replies(record, replies: list[str], answer: AnswerConfig) -> list[str]:
    """``replies`` to ``record`` as answer time would show them, each ended at its last whole sentence (and,
    as ``answer.words_from_sources`` holds answers, before a later sentence in words its sources lack)."""
    held = held_words(record.question, [s["text"] for s in record.sources], answer)
    return [_whole(shape(r, record.question, answer, lead=record.quote, held=held)) for r in replies]


def judge(record, shaped: list[str], embedder, min_similarity: float) -> list[tuple[str, float]]:
    """Each shaped reply to ``record``: why it is wrong ('' when right) and its cosine to the oracle's
    quote (-1 when empty). Right: the record's verdict, the record's number, and a cosine of at least
    ``min_similarity`` — a verdict alone ("Yes.") shares no words with the quote and passes."""
    verdict = record.answer.split(".")[0].strip().lower() if record.kind == "judgmental" else ""
    wanted = figures(record.answer.split('"')[0]) or figures(record.quote)
    said = list(dict.fromkeys(s for s in shaped if s))
    cosine = {}
    if said:
        vectors = np.asarray(embedder.embed_batch([record.quote] + said))
        cosine = dict(zip(said, (vectors[1:] @ vectors[0]).tolist()))
    out = []
    for s in shaped:
        if not s:
            out.append(("empty", -1.0))
            continue
        c = min_similarity if verdict and s.lower().rstrip(".!") == verdict else cosine[s]
        why = ("wrong_verdict" if verdict and not s.lower().startswith(verdict) else
               "wrong_number" if record.kind == "numeric" and not wanted & figures(s) else
               "far_from_oracle" if c < min_similarity else "")
        out.append((why, float(c)))
    return out


def _whole(text: str) -> str:
    """The reply without a last sentence cut off by the token limit."""
    sentences = reply_sentences(text)
    while sentences and not _ENDED.search(sentences[-1]):
        sentences.pop()
    return " ".join(sentences)


def sample_replies(records, generator, data, progress: bool = True) -> list[list[str]]:
    """For each record, its greedy reply and ``data.reply_samples`` sampled ones."""
    from tqdm import tqdm

    out = []
    size = data.batch_size
    for start in tqdm(range(0, len(records), size), disable=not progress, desc="replies", unit="batch"):
        chats = [r.messages()[:-1] for r in records[start:start + size]]
        greedy = generator.generate_batch(chats, max_new_tokens=data.reply_tokens)
        sampled = generator.generate_batch(chats, max_new_tokens=data.reply_tokens, samples=data.reply_samples,
                                           temperature=data.reply_temperature) if data.reply_samples else []
        k = data.reply_samples
        out += [[g] + sampled[i * k:(i + 1) * k] for i, g in enumerate(greedy)]
    return out


def self_replies(data, out, config: Config | None = None, generator=None, embedder=None,
                 progress: bool = True, say=None, command: str = "") -> dict:
    """Rewrite the train and validation targets of dataset folder ``data`` into ``out`` with the
    model's best right replies (see the module doc); returns the stats."""
    from ragqa.generators import BatchGenerator, load_generator

    config, data, out = config or Config(), Path(data), Path(out)
    say = say or (lambda line: None)
    splits, problems = load_pool(data)
    _claim(out, data)
    generator = generator or load_generator(config.generator)
    if not isinstance(generator, BatchGenerator):
        raise ConfigError(f"{generator.name} cannot sample replies in batches — use an in-process model "
                          f"(--model HF_ID or folder), not a server")
    if embedder is None:
        from retrieval.embed import load_embedder

        embedder = load_embedder(config.embedder)
    funnel, rewritten = Counter(), dict(splits)
    for name in ("train", "validation"):
        rewritten[name] = _rewrite(splits[name], generator, embedder, config, funnel, progress)
        say(f"{name}: {len(rewritten[name])} of {len(splits[name])} records kept")
    meta = json.loads((data / "meta.json").read_text()) if (data / "meta.json").exists() else {}
    stats = {"replies_from": str(data), "index": meta.get("index", "?"), "teacher": meta.get("teacher", "?"),
             "model": generator.name, "funnel": dict(funnel), "problems": problems,
             "splits": counts(rewritten), "samples": config.data.reply_samples,
             "temperature": config.data.reply_temperature, "min_similarity": config.data.reply_min_similarity}
    write_dataset(out, rewritten, stats, card(f"Rejection-sampled replies of {generator.name} on {data.name}", stats,
                                              command or f"ragqa replies --data {data} --out {out}"))
    (out / "meta.json").write_text(json.dumps({**meta, "replies_from": str(data.resolve())}, indent=1))
    return stats


def _rewrite(records, generator, embedder, config: Config, funnel: Counter, progress: bool) -> list:
    kinds = set(config.data.reply_kind_list) or {r.kind for r in records}
    todo = [r for r in records if not r.abstain and r.kind in kinds]
    replies = dict(zip((r.id for r in todo), sample_replies(todo, generator, config.data, progress)))
    kept = []
    for r in records:
        if r.abstain or r.kind not in kinds:  # abstentions, and kinds another replier serves, pass through
            kept.append(r)
            funnel["abstain_kept" if r.abstain else "other_kind_kept"] += 1
            continue
        reply, why = best_reply(r, replies[r.id], embedder, config.data.reply_min_similarity, config.answer)
        funnel[why or "kept"] += 1
        if reply:
            r.answer = cite(reply, r) if config.data.reply_cite else reply
            kept.append(r)
    if not config.data.reply_balance:
        return kept
    balanced = balance(kept, random.Random(config.data.seed))
    funnel["unbalanced_dropped"] += len(kept) - len(balanced)
    return balanced


def balance(records, rng: random.Random) -> list:
    """The kept records rebalanced (``data.reply_balance``), in their order: as many "No" as "Yes" targets,
    numeric fill-ins at most half the free-form answers, abstentions at most a fifth of the whole.

    Rejection sampling keeps what the replier gets right, so its bias becomes the data's:
    Qwen2.5-Coder-0.5B said "No" to most judgmental records and kept 90 "No" targets against 6 "Yes",
    and a model tuned on a similar skew answered "No" to QASPER's yes-questions. The numeric fill-ins
    ("what number fills the blank in ...") are the teacher's most artificial questions, and the
    abstentions are all kept while answerable records drop out, so each is capped too.
    """
    kind = defaultdict(list)
    for r in records:
        kind[_group(r)].append(r)
    pairs = min(len(kind["yes"]), len(kind["no"]))
    keep = kind["open"] + _sample(kind["yes"], pairs, rng) + _sample(kind["no"], pairs, rng)
    keep += _sample(kind["numeric"], len(kind["open"]) // 2, rng)
    keep += _sample(kind["abstain"], max(1, len(keep) // 4), rng)
    chosen = {id(r) for r in keep}
    return [r for r in records if id(r) in chosen]


def _group(record) -> str:
    if record.abstain:
        return "abstain"
    if record.kind == "judgmental" and (verdict := stated_verdict(record.answer)):
        return verdict
    return "numeric" if record.kind == "numeric" else "open"


def _sample(records: list, n: int, rng: random.Random) -> list:
    return rng.sample(records, n) if len(records) > n else records


def cite(reply: str, record) -> str:
    """The reply with its oracle source's marker before its last full stop ("... six layers [2]."):
    the untuned model's words cite nothing, and which source holds the answer is worth learning.
    Evaluation strips markers before scoring, so they cost no token F1."""
    wanted = set(record.oracle_ids or [record.oracle_id])
    marker = "".join(f"[{s['n']}]" for s in record.sources if s["chunk_id"] in wanted)
    if not marker:
        return reply
    cited, n = _ENDED.subn(lambda m: f" {marker}{m.group(0)}", reply, count=1)
    return cited if n else f"{reply} {marker}"


def _claim(out: Path, data: Path) -> None:
    if out.resolve() == data.resolve():
        raise ConfigError(f"--out {out} is the input folder — choose another, e.g. {data}-replies")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty — pass another --out, or delete it")
