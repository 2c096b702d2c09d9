import numpy as np
import pytest

from ingest import ingest
from ragqa.config import RetrievalConfig
from retrieval import Retriever
from retrieval.faiss_index import build_faiss, ivf_params
from retrieval.store import IndexStore


@pytest.fixture
def retriever(tmp_path, word_embedder):
    docs = {
        "bert.md": "# BERT\n\nBERT is pre-trained with masked language modelling and next sentence prediction.",
        "gpt.md": "# GPT\n\nGPT is trained autoregressively to predict the next token from left context.",
        "rag.md": "# RAG\n\nRetrieval augmented generation conditions a generator on retrieved passages.",
        "lora.md": "# LoRA\n\nLow rank adapters add trainable low rank matrices to frozen weights.",
    }
    for name, text in docs.items():
        (tmp_path / name).write_text(text)
    ingest([tmp_path], index="s", embedder=word_embedder, progress=False)
    return Retriever(IndexStore.open("s"), word_embedder, RetrievalConfig())


def test_faiss_matches_brute_force(retriever):
    store = retriever.store
    q = retriever.embedder.embed_batch(["masked language modelling"])
    exact = store.vectors @ q[0]
    scores, ids = store.faiss.search(q, 3)
    assert np.allclose(scores[0], np.sort(exact)[::-1][:3], atol=1e-5)  # same scores (ties may swap ids)
    assert np.allclose(exact[ids[0]], scores[0], atol=1e-5)


def test_flat_index_equals_numpy_on_random_vectors():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:20] + 0.1 * rng.normal(size=(20, 32)).astype(np.float32)
    _, ids = build_faiss(x).search(q, 10)
    assert (ids == np.argsort(-(q @ x.T), axis=1)[:, :10]).all()


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_the_right_document(retriever, mode):
    hits = retriever.search("which model uses masked language modelling", k=2, mode=mode)
    assert hits[0].chunk.path.endswith("bert.md")
    assert hits == sorted(hits, key=lambda h: -h.score)


def test_hybrid_fuses_both_rankings(retriever):
    hits = retriever.search("low rank adapters", k=4)
    top = hits[0]
    assert top.chunk.path.endswith("lora.md") and top.dense is not None and top.bm25 is not None
    assert top.score == pytest.approx(2 / 61)  # first in both rankings: 1/(60+1) twice


def test_doc_filter_restricts_results(retriever):
    hits = retriever.search("masked language modelling", k=5, doc="gpt.md")
    assert hits and all(h.chunk.path.endswith("gpt.md") for h in hits)


def test_ivf_recall_against_exact_search():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(200, 64)).astype(np.float32)
    x = centers[rng.integers(0, 200, 60_000)] + 0.3 * rng.normal(size=(60_000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = build_faiss(x)
    assert type(index).__name__ == "IndexIVFFlat" and index.nprobe == ivf_params(60_000)[1]
    queries = x[:50] + 0.05 * rng.normal(size=(50, 64)).astype(np.float32)
    exact = np.argsort(-(queries @ x.T), axis=1)[:, :10]
    _, approx = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.95


def test_a_named_paper_ranks_first_when_the_words_favour_another(tmp_path, word_embedder):
    docs = {"llama.md": "# LLaMA: Open and Efficient Foundation Language Models\n\nWe pre-normalize the input "
                        "of each sub-layer and use the SwiGLU activation and rotary embeddings.",
            "family.md": "# The Transformer Family\n\nThe transformer architecture stacks attention layers; "
                         "many modifications of the transformer architecture improve it."}
    for name, text in docs.items():
        (tmp_path / name).write_text(text)
    ingest([tmp_path], index="n", embedder=word_embedder, progress=False)
    question = "What modifications does LLaMA make to the transformer architecture?"
    plain = Retriever(IndexStore.open("n"), word_embedder, RetrievalConfig(title_boost=False))
    named = Retriever(IndexStore.open("n"), word_embedder, RetrievalConfig())
    assert plain.search(question, k=1)[0].chunk.path.endswith("family.md")
    assert named.search(question, k=1)[0].chunk.path.endswith("llama.md")
    # a lowercase common word of a title is not a name
    assert named.named("what is the family of models?", plain.dense("family", 5)) == []


def test_bm25_finds_a_chinese_passage_by_a_chinese_query_without_spaces(tmp_path, word_embedder):
    from retrieval.lexical import analyse

    docs = {"train.md": "# 分布式训练\n\n数据并行把同一个模型复制到每张显卡上，每张卡处理不同的数据批次，再同步梯度。",
            "infer.md": "# 推理优化\n\n量化把模型权重从十六位浮点数压缩为四位整数，从而减少显存占用，推理也更快。",
            "mixed.md": "# LoRA\n\nLoRA 冻结预训练权重，只训练插入每一层的低秩矩阵 (low-rank matrices)，参数少得多。",
            "bert.md": "# BERT\n\nBERT is pre-trained with masked language modelling."}
    for name, text in docs.items():
        (tmp_path / name).write_text(text)
    ingest([tmp_path], index="zh", embedder=word_embedder, progress=False)
    r = Retriever(IndexStore.open("zh"), word_embedder, RetrievalConfig())
    query = "怎样减少显存占用？"  # shares no whitespace-separated token with any passage
    assert not set(query.split()) & {w for t in docs.values() for w in t.split()}
    assert r.search(query, k=1, mode="bm25")[0].chunk.path.endswith("infer.md")
    assert r.search("数据并行是什么", k=1, mode="bm25")[0].chunk.path.endswith("train.md")
    assert r.search("LoRA 训练什么矩阵", k=1, mode="bm25")[0].chunk.path.endswith("mixed.md")  # mixed scripts
    assert r.search("masked language modelling", k=1, mode="bm25")[0].chunk.path.endswith("bert.md")
    assert analyse("LoRA 冻结权重") == ["lora", "冻结", "结权", "权重"] and analyse("的") == ["的"]


class UnknownCJK:
    """A word-overlap embedder that, like MiniLM, has no tokens for most Chinese characters."""

    id, dim, max_tokens = "test/word-overlap", 512, 64

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def unknown_share(self, text):
        import re

        chars = re.findall(r"\S", text)
        return sum("\u4e00" <= c <= "\u9fff" for c in chars) / max(1, len(chars))


def test_hybrid_search_drops_the_dense_ranking_for_a_query_the_embedder_cannot_read(tmp_path, word_embedder):
    (tmp_path / "infer.md").write_text("# 推理优化\n\n量化把模型权重从十六位浮点数压缩为四位整数，从而减少显存占用，推理也更快。")
    (tmp_path / "bert.md").write_text("# BERT\n\nBERT is pre-trained with masked language modelling and more.")
    ingest([tmp_path], index="u", embedder=word_embedder, progress=False)
    r = Retriever(IndexStore.open("u"), UnknownCJK(word_embedder), RetrievalConfig())
    zh = r.search("怎样减少显存占用？", k=2)
    assert zh[0].chunk.path.endswith("infer.md") and all(h.dense is None for h in zh)  # BM25 alone
    en = r.search("masked language modelling", k=2)
    assert en[0].chunk.path.endswith("bert.md") and en[0].dense is not None  # English still fused


def test_ingest_warns_once_about_documents_the_embedder_cannot_read(tmp_path, word_embedder):
    for i in range(4):
        (tmp_path / f"zh{i}.md").write_text(f"# 笔记{i}\n\n量化把模型权重从十六位浮点数压缩为四位整数，从而减少显存占用，推理也更快。第{i}篇。")
    (tmp_path / "en.md").write_text("# BERT\n\nBERT is pre-trained with masked language modelling and more.")
    report = ingest([tmp_path], index="w", embedder=UnknownCJK(word_embedder), progress=False)
    assert len(report.added) == 5 and len(report.warnings) == 1  # ingested all the same, one line
    line = str(report.warnings[0])
    assert line.startswith("4 document(s) (zh0.md, zh1.md, zh2.md and 1 more)") and "multilingual" in line
