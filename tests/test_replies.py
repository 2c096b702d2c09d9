"""Rejection-sampled replies (``finetune.self_replies``): which of a model's replies become targets,
with a fake model whose replies are known — right and wrong verdicts, numbers, far replies,
sentences cut by the token limit."""
import json
import random
from collections import Counter
from types import SimpleNamespace

import pytest

from fakes import WordEmbedder
from finetune import generate_data, self_replies
from finetune._records import Record
from finetune._replies import balance, best_reply, cite
from finetune._select import load_pool
from ft_corpus import write_corpus
from ingest import ingest
from ragqa.config import AnswerConfig, Config, DataConfig
from ragqa.errors import ConfigError
from retrieval import Retriever
from retrieval.store import IndexStore

QUOTE = "The encoder stacks six identical layers of self attention and feed forward networks."


def record(kind="factual", question="What does the encoder stack?", answer=f'"{QUOTE}" [1]') -> Record:
    return Record(question=question, answer=answer, kind=kind, teacher="deterministic", doc_id="d", source="d.pdf",
                  title="T", oracle_id="c1", quote=QUOTE, sources=[])


@pytest.fixture
def embedder():
    return WordEmbedder()


def test_the_closest_right_reply_wins_and_a_far_one_is_rejected(embedder):
    near = "The encoder stacks six identical layers of attention."
    far = "Cats sleep most of the day in warm places."
    assert best_reply(record(), [far, near], embedder, 0.5) == (near, "")
    assert best_reply(record(), [far], embedder, 0.5) == ("", "far_from_oracle")


def test_a_last_sentence_cut_by_the_token_limit_is_dropped_from_the_target(embedder):
    reply, _ = best_reply(record(), ["It stacks six identical layers. It also feeds the decod"], embedder, 0.3)
    assert reply == "It stacks six identical layers."
    assert best_reply(record(), ["It stacks six identical lay"], embedder, 0.3) == ("", "empty")


def test_a_reply_that_only_says_the_lead_quote_again_is_no_target(embedder):
    # answer time shows the quote first: a target that repeats it teaches the model to repeat it
    assert best_reply(record(), [QUOTE, "The encoder stacks six identical layers."], embedder, 0.3) == ("", "empty")


def test_yes_no_targets_keep_only_replies_with_the_records_verdict(embedder):
    question = "Is it true that the encoder stacks six identical layers?"
    yes = record("judgmental", question, f'Yes. "{QUOTE}" [1]')
    no = record("judgmental", question, f'No. "{QUOTE}" [1]')
    restating = "The encoder stacks six identical layers."  # shaping opens it with the verdict it states: Yes.
    denying = "The encoder does not stack six layers."
    assert best_reply(yes, [denying, restating], embedder, 0.5) == (f"Yes. {restating}", "")
    assert best_reply(no, [restating], embedder, 0.5) == ("", "wrong_verdict")
    assert best_reply(no, ["Yes.", "No."], embedder, 0.5) == ("No.", "")  # a verdict alone answers
    assert best_reply(yes, ["Pineapples are tasty."], embedder, 0.5) == ("", "far_from_oracle")


def test_a_target_cites_its_oracle_source_before_the_last_full_stop():
    r = record()
    r.sources = [{"n": 1, "chunk_id": "other"}, {"n": 2, "chunk_id": "c1"}]
    assert cite("It has six layers. They repeat!", r) == "It has six layers. They repeat [2]!"
    assert cite("Yes.", r) == "Yes [2]."
    r.sources = [{"n": 1, "chunk_id": "other"}]
    assert cite("Yes.", r) == "Yes."  # no source shows the oracle: nothing to cite


def test_numeric_targets_must_hold_the_records_number(embedder):
    numeric = record("numeric", "How many layers does the encoder stack?", f'6 layers. "{QUOTE}" [1]')
    numeric.quote = "The encoder stacks 6 identical layers."
    assert best_reply(numeric, ["It has 8 layers."], embedder, 0.0) == ("", "wrong_number")
    assert best_reply(numeric, ["It has 8 layers.", "The encoder has 6 layers."], embedder, 0.0)[0] == \
        "The encoder has 6 layers."


class Replies:
    """A batch model whose greedy reply is always wrong and whose samples say the oracle quote for
    the questions in ``right`` only: which records survive is known in advance."""

    name = "test/replies"

    def __init__(self, right: dict[str, str] | None = None):
        self.right, self.calls = right or {}, []

    def generate_batch(self, chats, max_new_tokens=None, samples=0, temperature=0.7):
        self.calls.append((len(chats), samples))
        if not samples:
            return ["Pineapples grow on volcanic islands." for _ in chats]
        questions = [c[-1]["content"].rsplit("Question: ", 1)[1] for c in chats]
        return [self.right.get(q, "Pineapples are tasty.") for q in questions for _ in range(samples)]

    def generate(self, messages, max_new_tokens=None):
        raise AssertionError("replies are sampled in batches")

    def count_tokens(self, text):
        return len(text.split())


def paraphrase(quote: str) -> str:
    """Most of the quote's words in a new sentence: right, and not the lead quote said again."""
    words = quote.rstrip(".!?").split()
    return f"In short, {' '.join(words[:max(3, len(words) * 2 // 3)])}."


@pytest.fixture
def dataset(tmp_path, word_embedder):
    ingest([write_corpus(tmp_path / "corpus")], index="ft", embedder=word_embedder, progress=False)
    retriever = Retriever(IndexStore.open("ft"), word_embedder)
    generate_data("ft", tmp_path / "data", Config(data=DataConfig(n=24)), retriever=retriever, progress=False)
    return tmp_path / "data"


def test_self_replies_keeps_exactly_the_records_with_a_right_reply(dataset, tmp_path, word_embedder):
    before, _ = load_pool(dataset)
    answerable = [r for n in ("train", "validation") for r in before[n] if not r.abstain and r.kind not in ("judgmental", "numeric")]
    right = {r.question: paraphrase(r.quote) for r in answerable[::2]}  # every second record has a right reply
    model, out = Replies(right), tmp_path / "replies"
    stats = self_replies(dataset, out, Config(data=DataConfig(reply_samples=2)), generator=model,
                         embedder=word_embedder, progress=False)
    after, _ = load_pool(out)
    assert [r.to_dict() for r in after["test"]] == [r.to_dict() for r in before["test"]]
    kept = {r.question for n in ("train", "validation") for r in after[n] if not r.abstain}
    assert kept == set(right)
    for name in ("train", "validation"):
        old = {r.id: r for r in before[name]}
        assert {r.id for r in after[name] if r.abstain} == {r.id for r in before[name] if r.abstain}
        for r in after[name]:
            assert "Pineapples" not in r.answer
            oracle = [s["n"] for s in r.sources if s["chunk_id"] == r.oracle_id]
            assert r.abstain or (oracle and r.answer.endswith(f"[{oracle[0]}]."))  # cites where the answer is
            assert r.messages()[:-1] == old[r.id].messages()[:-1]  # the prompt is unchanged
    assert stats["funnel"]["kept"] == len(right)
    assert {samples for _, samples in model.calls} == {0, 2}
    assert json.loads((out / "meta.json").read_text())["replies_from"]
    assert "Index: `ft` · teacher: `deterministic`" in (out / "README.md").read_text()  # the card says where from


def test_a_replier_can_serve_some_kinds_only_and_leave_targets_uncited(dataset, tmp_path, word_embedder):
    # Qwen2.5-Coder-0.5B's free-form replies with SmolLM2's own verdicts: each rewrites its kinds only
    before, _ = load_pool(dataset)
    pool = [r for n in ("train", "validation") for r in before[n]]
    free = [r for r in pool if not r.abstain and r.kind in ("factual", "definition", "comparison")]
    right = {r.question: paraphrase(r.quote) for r in free}
    model, out = Replies(right), tmp_path / "replies"
    config = Config(data=DataConfig(reply_samples=1, reply_kinds="factual,definition,comparison", reply_cite=False))
    stats = self_replies(dataset, out, config, generator=model, embedder=word_embedder, progress=False)
    after = {r.id: r for n in ("train", "validation") for r in load_pool(out)[0][n]}
    others = [r for r in pool if r.abstain or r.kind not in ("factual", "definition", "comparison")]
    assert others and all(after[r.id].answer == r.answer for r in others)  # passed through untouched
    assert {after[r.id].answer for r in free} == set(right.values())  # the model's words, no source number
    assert sum(calls for calls, _ in model.calls) == 2 * len(free)  # no other kind was asked
    assert stats["funnel"]["other_kind_kept"] == len([r for r in others if not r.abstain])


def test_self_replies_refuses_its_own_input_a_full_folder_and_a_server_model(dataset, tmp_path, word_embedder):
    with pytest.raises(ConfigError, match="input folder"):
        self_replies(dataset, dataset, generator=Replies(), embedder=word_embedder, progress=False)
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        self_replies(dataset, full, generator=Replies(), embedder=word_embedder, progress=False)
    assert (full / "x").read_text() == "keep me"

    class Server:
        name = "server"

        def generate(self, messages, max_new_tokens=None):
            yield ""

    with pytest.raises(ConfigError, match="in batches"):
        self_replies(dataset, tmp_path / "new", generator=Server(), embedder=word_embedder, progress=False)


def test_kept_targets_are_rebalanced_so_a_repliers_bias_does_not_become_the_tuned_models():
    def rec(kind, answer, abstain=False):
        return SimpleNamespace(kind=kind, answer=answer, abstain=abstain)

    records = ([rec("judgmental", "No [1].") for _ in range(9)] + [rec("judgmental", "Yes. It does [2].") for _ in range(3)]
               + [rec("factual", f"It says {i}.") for i in range(8)] + [rec("numeric", "It is 6 [1].") for _ in range(7)]
               + [rec("judgmental", "I could not find this.", abstain=True) for _ in range(20)])
    kept = balance(records, random.Random(0))
    verdicts = Counter(r.answer.split()[0].strip(".") for r in kept if r.kind == "judgmental" and not r.abstain)
    assert verdicts == {"No": 3, "Yes": 3}  # as many of each as the rarer verdict
    assert sum(r.kind == "factual" for r in kept) == 8  # free-form answers are all kept
    assert sum(r.kind == "numeric" for r in kept) == 4  # at most half the free-form ones
    assert sum(r.abstain for r in kept) == (8 + 6 + 4) // 4  # a fifth of the whole
    at = [next(i for i, x in enumerate(records) if x is r) for r in kept]
    assert at == sorted(at)  # in their order


def test_a_preference_pair_is_the_best_right_reply_against_the_worst_wrong_one(embedder):
    from finetune._prefer import _pair

    config = Config()
    best, short = "The encoder stacks six identical layers of attention.", "The encoder has six layers."
    far, debris = "Cats sleep most of the day in warm places.", "1. 1. 1."
    pair, why = _pair(record(), [short, far, best, debris], embedder, config)
    # a reply that says nothing once shaped is the worst, and is rejected as the model wrote it
    assert not why and (pair["chosen"], pair["rejected"]) == (best, debris) and pair["margin"] > 1
    assert _pair(record(), [far, debris], embedder, config) == (None, "none_right")
    assert _pair(record(), [best, best], embedder, config) == (None, "none_wrong")
    yes = record("judgmental", "Is it true that the encoder stacks six identical layers?", f'Yes. "{QUOTE}" [1]')
    # the verdict is all that differs: too alike to teach anything beyond it
    assert _pair(yes, ["Yes, the encoder stacks six identical layers.", "No, the encoder stacks six identical layers."],
                 embedder, config) == (None, "near_identical")


def test_pairs_are_made_for_the_records_with_a_right_and_a_wrong_reply_and_no_yes_no_ones(dataset, tmp_path, word_embedder):
    from finetune import preference_pairs

    before, _ = load_pool(dataset)
    answerable = [r for n in ("train", "validation") for r in before[n] if not r.abstain]
    right = {r.question: paraphrase(r.quote) for r in answerable[::2]}  # the greedy reply is always wrong
    stats = preference_pairs(dataset, tmp_path / "pairs.jsonl", Config(data=DataConfig(reply_samples=2)),
                             generator=Replies(right), embedder=word_embedder, progress=False)
    pairs = [json.loads(line) for line in open(tmp_path / "pairs.jsonl")]
    by_question = {r.question: r for r in answerable}
    wanted = {q for q in right if by_question[q].kind != "judgmental"}  # only these can have a right reply
    assert {p["prompt"][-1]["content"].rsplit("Question: ", 1)[1] for p in pairs} <= wanted and len(pairs) >= 2
    for p in pairs:
        question = p["prompt"][-1]["content"].rsplit("Question: ", 1)[1]
        assert p["chosen"].startswith("In short") and p["rejected"].startswith("Pineapples") and p["kind"] != "judgmental"
        assert p["prompt"] == by_question[question].messages()[:-1] and p["split"] in ("train", "validation")
    assert sum(stats["pairs"].values()) == len(pairs) and stats["funnel"]["paired"] == len(pairs)


def test_a_target_ends_before_a_later_sentence_in_words_its_sources_lack():
    from finetune._replies import shaped_replies

    held = record()
    held.sources = [{"n": 1, "chunk_id": "c1", "title": "T", "label": "d.pdf, p. 1", "text": QUOTE, "term": ""}]
    reply = "It has six of them. Each layer has attention. It was designed in Paris."
    config = AnswerConfig()
    assert shaped_replies(held, [reply], config) == ["It has six of them. Each layer has attention."]
    assert shaped_replies(record(), [reply], config) == [reply]  # no sources shown: nothing to hold it to
