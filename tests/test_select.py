"""MoDS selection (``finetune.select_data``): k-center against brute force, necessity with a fake
model whose failures are known, the quality proxy, bad input."""
import itertools
import json

import numpy as np
import pytest

from fakes import WordEmbedder
from finetune import generate_data, select_data
from finetune._records import Record
from finetune._select import k_center_greedy, quality_proxy
from ft_corpus import write_corpus
from ingest import ingest
from ragqa.config import Config, DataConfig
from ragqa.errors import ConfigError, RagqaError
from retrieval import Retriever
from retrieval.store import IndexStore


def cfg(**data) -> Config:
    return Config(data=DataConfig(**data))


@pytest.fixture
def dataset(tmp_path, word_embedder):
    ingest([write_corpus(tmp_path / "corpus")], index="ft", embedder=word_embedder, progress=False)
    retriever = Retriever(IndexStore.open("ft"), word_embedder)
    generate_data("ft", tmp_path / "data", cfg(n=24), retriever=retriever, progress=False)
    return tmp_path / "data", retriever


def brute_force_greedy(points, k):
    """The same greedy rule written as plain loops."""
    mean = [sum(c) / len(points) for c in zip(*points)]
    dist = lambda a, b: sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5  # noqa: E731
    chosen = [min(range(len(points)), key=lambda i: (dist(points[i], mean), i))]
    while len(chosen) < k:
        chosen.append(max(range(len(points)), key=lambda i: (min(dist(points[i], points[c]) for c in chosen), -i)))
    return chosen


def radius(points, centres):
    return max(min(np.linalg.norm(points[i] - points[c]) for c in centres) for i in range(len(points)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_greedy_matches_brute_force_and_is_within_twice_the_optimum(seed):
    points = np.random.default_rng(seed).standard_normal((11, 3))
    for k in (1, 2, 3, 4):
        greedy = k_center_greedy(points, k)
        assert greedy == brute_force_greedy(points.tolist(), k)
        optimum = min(radius(points, c) for c in itertools.combinations(range(len(points)), k))
        assert radius(points, greedy) <= 2 * optimum + 1e-9


class KnowsSome:
    """A base model that answers exactly the questions it was told, with their reference answer,
    and "I do not know." to the rest: its failures are known in advance."""

    name = "test/knows-some"

    def __init__(self, known: dict[str, str], batch: bool):
        self.known, self.chats = known, []
        if batch:
            self.generate_batch = lambda chats, max_new_tokens=None: [self._reply(c) for c in chats]

    def _reply(self, chat):
        self.chats.append(chat)
        question = chat[-1]["content"].rsplit("Question: ", 1)[1]
        return self.known.get(question, "I do not know.")

    def generate(self, messages, max_new_tokens=None):
        yield self._reply(messages)

    def count_tokens(self, text):
        return len(text.split())


@pytest.mark.parametrize("batch", [True, False])
def test_necessity_adds_exactly_the_questions_the_model_fails(dataset, tmp_path, batch):
    data, retriever = dataset
    train = [json.loads(line) for line in open(data / "train.jsonl")]
    known = {r["question"]: r["answer"] for r in train[::2]}
    model, lines = KnowsSome(known, batch), []
    stats = select_data(data, tmp_path / "sel", cfg(budget=len(train), coverage_share=0.25), generator=model,
                        retriever=retriever, embedder=WordEmbedder(), progress=False, say=lines.append)
    selected = [json.loads(line) for line in open(tmp_path / "sel" / "train.jsonl")]
    s = stats["stages"]
    seed = s["coverage"]
    assert s["pool"] == len(train) and s["quality"] == len(train)  # every generated record passes the proxy
    assert len(model.chats) == len(train) - seed  # the seed set is not asked
    asked = {c[-1]["content"].rsplit("Question: ", 1)[1] for c in model.chats}
    failed = asked - set(known)
    assert s["necessity_failed"] == len(failed) and len(selected) == seed + len(failed)
    assert failed <= {r["question"] for r in selected}
    assert not (asked & set(known)) & {r["question"] for r in selected}  # what it knows is not needed
    assert all(c[0]["content"].startswith("Answer using only the sources") and "Sources:\n\n[1]" in c[-1]["content"]
               for c in model.chats)  # retrieval on, in the answer-time layout
    assert [line.split(":")[0] for line in lines] == ["quality", "coverage", "necessity"]
    assert "Selection stages" in (tmp_path / "sel" / "README.md").read_text()
    assert json.loads((tmp_path / "sel" / "validation.jsonl").read_text().splitlines()[0]) == \
        json.loads((data / "validation.jsonl").read_text().splitlines()[0])


def test_the_quality_proxy_drops_an_answer_its_oracle_does_not_support():
    source = [{"n": 1, "chunk_id": "c1", "title": "t", "label": "x, p. 1", "text": "BERT uses 12 layers.", "term": ""}]
    good = Record("How many layers does BERT use?", '12. "BERT uses 12 layers." [1]', "numeric", "t", "d", "p", "t",
                  "c1", ["c1"], sources=source)
    bad = Record("How many layers does BERT use?", '"BERT uses 24 layers." [1]', "numeric", "t", "d", "p", "t",
                 "c1", ["c1"], sources=source)
    rated = Record(good.question, good.answer, "numeric", "m", "d", "p", "t", "c1", ["c1"], rating=1.0, sources=source)
    d = DataConfig()
    assert quality_proxy(good, d) == 1.0 and quality_proxy(bad, d) < d.quality_threshold
    assert quality_proxy(rated, d) == pytest.approx(0.8)


def test_bad_input_budget_malformed_records_and_occupied_output(dataset, tmp_path):
    data, retriever = dataset
    n = len((data / "train.jsonl").read_text().splitlines())
    with pytest.raises(ConfigError, match=f"--budget 5000 is larger than the {n} train records .* pass --budget {n} or less"):
        select_data(data, tmp_path / "s", cfg(budget=5000), progress=False)
    with open(data / "train.jsonl", "a") as f:
        f.write("{not json\n" + json.dumps({"question": "q"}) + "\n")
    stats = select_data(data, tmp_path / "s", cfg(budget=3, coverage_share=1.0), embedder=WordEmbedder(),
                        progress=False)
    assert stats["stages"]["malformed"] == 2 and stats["stages"]["selected"] == 3
    assert any("not JSON" in p for p in stats["problems"]) and any("missing answer" in p for p in stats["problems"])
    with pytest.raises(ConfigError, match="already holds a different dataset"):
        select_data(data, tmp_path / "data" / "..", cfg(budget=3), progress=False)
    with pytest.raises(RagqaError, match="no train.jsonl — make the dataset first"):
        select_data(tmp_path / "nothing", tmp_path / "s2", cfg(budget=3), progress=False)


def test_select_command_prints_each_stage(dataset, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ragqa.cli import app

    data, _ = dataset
    monkeypatch.setattr("retrieval.embed.load_embedder", lambda config=None: WordEmbedder())
    monkeypatch.setattr("ragqa.generators.load_generator", lambda config=None: KnowsSome({}, batch=True))
    result = CliRunner().invoke(app, ["select", "--data", str(data), "--out", str(tmp_path / "s"), "--budget", "6", "-q"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["quality", "coverage", "necessity"]
    assert lines[-1].startswith("6 train records →")
    too_many = CliRunner().invoke(app, ["select", "--data", str(data), "--out", str(tmp_path / "t"), "--budget", "999"])
    assert too_many.exit_code == 1 and "is larger than the" in too_many.output
