"""Answer and retrieval metrics, bootstrap confidence intervals and paired tests.

Token F1 / exact match follow the SQuAD evaluation script (lowercase, no punctuation or
articles); Chinese text is compared character by character as in CMRC2018's script.
ROUGE-L comes from ``rouge-score``, BLEU from ``sacrebleu``, METEOR from ``nltk`` when its
WordNet data is installed (otherwise reported as skipped with the reason).
"""
from __future__ import annotations

import math
import re
import string
from collections import Counter

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | set("，。！？、；：“”‘’（）《》【】…—")


def normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def tokens(text: str, lang: str = "en") -> list[str]:
    """Words, or for Chinese single characters (Latin words and numbers kept whole)."""
    text = normalize(text)
    if lang == "zh":
        return re.findall(r"[\u4e00-\u9fff]|[a-z0-9]+", text)
    return text.split()


def token_f1(prediction: str, gold: str, lang: str = "en") -> float:
    p, g = tokens(prediction, lang), tokens(gold, lang)
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or not common:
        return float(p == g)
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def yes_no(answer: str) -> str:
    """'Yes' or 'No' when the answer opens with one (after any leading quote), else the answer itself."""
    body = re.sub(r'^\s*"[^"]*"\s*(\[\d+\])?\s*', "", answer)  # a lead quote is evidence, not the verdict
    match = re.match(r"\W*(yes|no)\b", body, re.IGNORECASE)
    return match.group(1).capitalize() if match else answer


def exact_match(prediction: str, gold: str, lang: str = "en") -> float:
    return float(tokens(prediction, lang) == tokens(gold, lang))


def best(metric, prediction: str, golds: list[str], lang: str = "en") -> float | None:
    """The metric against the closest gold answer (None when there is no gold answer)."""
    return max((metric(prediction, g, lang) for g in golds), default=None)


def rouge_l(prediction: str, gold: str, lang: str = "en") -> float:
    from rouge_score import rouge_scorer

    if lang == "zh":  # rouge-score's tokenizer drops CJK characters: score on characters
        p, g = " ".join(tokens(prediction, lang)), " ".join(tokens(gold, lang))
        return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_SpaceTokenizer()).score(g, p)["rougeL"].fmeasure
    return rouge_scorer.RougeScorer(["rougeL"]).score(gold, prediction)["rougeL"].fmeasure


class _SpaceTokenizer:
    def tokenize(self, text):
        return text.split()


def bleu(prediction: str, gold: str, lang: str = "en") -> float:
    """Sentence BLEU in [0, 1] with sacrebleu's exponential smoothing."""
    import sacrebleu

    return sacrebleu.sentence_bleu(prediction, [gold], tokenize="zh" if lang == "zh" else "13a").score / 100


def meteor_unavailable_reason() -> str | None:
    """None when METEOR can run, else why not."""
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return None
    except (ImportError, LookupError):
        return "METEOR needs nltk's WordNet data (python -m nltk.downloader wordnet); not installed here"


def meteor(prediction: str, gold: str, lang: str = "en") -> float:
    from nltk.translate.meteor_score import meteor_score

    return meteor_score([tokens(gold, lang)], tokens(prediction, lang))


def doc_hit(retrieved: list[str], gold: str, k: int) -> float:
    return float(any(_same_doc(r, gold) for r in retrieved[:k]))


def reciprocal_rank(retrieved: list[str], gold: str) -> float:
    return next((1 / (i + 1) for i, r in enumerate(retrieved) if _same_doc(r, gold)), 0.0)


def _same_doc(retrieved: str, gold: str) -> bool:
    """A retrieved source path/id matches a gold file name or doc id."""
    name = retrieved.split("/")[-1]
    return bool(gold) and (retrieved == gold or name == gold or name.rsplit(".", 1)[0] == gold)


def bootstrap_ci(values, n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of ``values`` (resampling questions)."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if len(x) == 0:
        return (math.nan, math.nan, math.nan)
    means = np.random.default_rng(seed).choice(x, size=(n, len(x)), replace=True).mean(axis=1)
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return (float(x.mean()), float(lo), float(hi))


def paired_bootstrap(a, b, n: int = 1000, seed: int = 0) -> dict:
    """Mean difference a - b over the same questions, its 95% interval and the share of resamples where a <= b."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if not pairs:
        return {"diff": math.nan, "lo": math.nan, "hi": math.nan, "p": math.nan}
    d = np.array([x - y for x, y in pairs])
    means = np.random.default_rng(seed).choice(d, size=(n, len(d)), replace=True).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "p": float((means <= 0).mean())}


def mcnemar(a: list[bool], b: list[bool]) -> dict:
    """Exact McNemar test on paired right/wrong outcomes: wins, losses and the two-sided p-value."""
    wins = sum(x and not y for x, y in zip(a, b))
    losses = sum(y and not x for x, y in zip(a, b))
    n = wins + losses
    k = min(wins, losses)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return {"wins": wins, "losses": losses, "p": p}
