import pytest

from ingest import ingest
from ragqa.config import RetrievalConfig
from retrieval import Retriever, background, find_terms
from retrieval.store import IndexStore
from retrieval.terms import Vocabulary, excerpt

CORPUS = [
    "BERT is pre-trained with masked language modelling and next sentence prediction.",
    "LoRA (low-rank adaptation) freezes the pretrained weights and trains low-rank matrices. "
    "LoRA cuts the number of trainable parameters by 10,000 times.",
    "Perplexity is the exponential of the average negative log-likelihood of a test set.",
    "We fine-tune the model on question answering tasks and report accuracy.",
]


def words(term_list):
    return [t.text for t in term_list]


@pytest.fixture
def vocab():
    return Vocabulary(CORPUS)


def test_acronyms_and_rare_words_found_common_words_not(vocab):
    terms = find_terms("How does LoRA reduce the number of trainable parameters?", vocab)
    assert words(terms)[0] == "LoRA" and terms[0].kind == "acronym"
    assert "trainable parameters" in words(terms)  # a phrase the corpus uses, kept whole
    assert not {"number", "reduce", "parameters", "How"} & set(words(terms))


def test_multi_word_term_is_kept_whole(vocab):
    terms = find_terms("What is masked language modelling used for?", vocab)
    assert words(terms) == ["masked language modelling"] and terms[0].kind == "phrase"


def test_terms_absent_from_the_corpus_are_ignored(vocab):
    # quantization is rare in English but the corpus never uses it: no background to fetch
    assert find_terms("Does quantization hurt accuracy?", vocab) == []
    assert find_terms("What is the main idea of the paper?", vocab) == []


def test_possessive_and_ranking(vocab):
    terms = find_terms("What is BERT's perplexity?", vocab, max_terms=1)
    assert words(terms) == ["BERT"]  # acronyms outrank rare words; "BERT's" is read as BERT


def test_excerpt_starts_at_the_definition_and_respects_budget():
    text = ("Many adapters exist. Adapters were studied widely. LoRA (low-rank adaptation) is a method "
            "that adds trainable low-rank matrices. It was published in 2021. Unrelated closing words here.")
    count = lambda s: len(s.split())  # noqa: E731
    got, defines = excerpt(text, "LoRA", budget=16, count_tokens=count)
    assert defines and got.startswith("LoRA (low-rank adaptation) is")
    assert count(got) <= 16 and "Unrelated" not in got


def test_excerpt_falls_back_to_first_mention():
    got, defines = excerpt("Intro. We evaluate BERT on SQuAD. Done.", "BERT", 50, lambda s: len(s.split()))
    assert not defines and got.startswith("We evaluate BERT")


@pytest.fixture
def retriever(tmp_path, word_embedder):
    for i, text in enumerate(CORPUS):
        (tmp_path / f"doc{i}.md").write_text(f"# Doc {i}\n\n{text}")
    ingest([tmp_path], index="t", embedder=word_embedder, progress=False)
    return Retriever(IndexStore.open("t"), word_embedder, RetrievalConfig())


def test_background_fetches_the_defining_passage(retriever):
    found = background("Why is LoRA cheaper than full fine-tuning?", retriever, budget_tokens=60)
    assert [b.term.text for b in found][:1] == ["LoRA"]
    assert found[0].defines and found[0].chunk.path.endswith("doc1.md")
    assert found[0].text.startswith("LoRA (low-rank adaptation)")


def test_background_skips_passages_already_in_the_prompt(retriever):
    lora = next(c for c in retriever.store.chunks if "LoRA" in c.text)
    found = background("Why is LoRA cheap?", retriever, skip_chunks={lora.id})
    assert all(b.chunk.id != lora.id for b in found)


def test_background_budget_is_shared_between_terms(retriever):
    count = lambda s: len(s.split())  # noqa: E731
    found = background("Compare LoRA and BERT perplexity", retriever, budget_tokens=30, count_tokens=count)
    assert len(found) >= 2
    assert sum(count(b.text.rstrip(" …")) for b in found) <= 30
