"""Text helpers shared by every layer: sentence splitting and stopwords (base layer, no stage imports)."""
from __future__ import annotations

import re

# after . ! ? and a space before a capital; after Chinese 。！？ (closing quote kept) with or without a
# space; and at line breaks, which end headings too
# abbreviations papers write before a capital, digit or bracket ("Zellers et al. (2018) introduced", "see
# Fig. 3", "e.g. BERT"): no sentence ends there (a fixed-width lookbehind each, as `re` wants)
NOT_AN_END = "".join(rf"(?<!\b{re.escape(a)})" for a in (
    "et al.", "e.g.", "i.e.", "cf.", "vs.", "Fig.", "Figs.", "Eq.", "Eqs.", "Sec.", "Tab.", "Ref.", "resp."))
SENTENCE_END = re.compile(NOT_AN_END + r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"“])|(?<=[。！？])(?![”’」』)）])\s*"
                          r"|(?<=[。！？][”’」』)）])\s*|\n\s*")
# the instruction given with retrieved sources, and the hint added to a yes/no question (retrieval.context
# builds the prompt with them; ragqa.reply drops a reply sentence that says them back). Short on purpose:
# with a longer instruction SmolLM2-135M drifted off the sources (measured on the user guide); larger models
# follow it just as well. Asking for one or two sentences, with the passages cut to their best sentences,
# lifted QASPER dev semantic similarity (bench/answer_quality.py)
SYSTEM_RAG = "Answer using only the sources, in one or two short sentences. Cite sources as [1], [2]."
YES_NO_HINT = "Answer Yes or No first."
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"  # kana, CJK ideographs, hangul
CJK_RUN = re.compile(f"([{CJK}]+)")


def cjk_count(text: str) -> int:
    """CJK characters in ``text`` (each carries about a word)."""
    return sum(len(run) for run in CJK_RUN.findall(text))


def cjk_share(text: str) -> float:
    """Share of the letters of ``text`` that are CJK characters."""
    letters = sum(c.isalpha() for c in text)
    return cjk_count(text) / letters if letters else 0.0
STOPWORDS = frozenset("""a about above after again all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from further had
has have having he her here hers him his how i if in into is it its itself just me more most my no nor
not of off on once only or other our out over own same she should so some such than that the their them
then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your explain describe define mean means meaning compare
difference differences between use used using paper papers work works does role purpose main""".split())


def cjk_bigrams(run: str) -> list[str]:
    """Overlapping character bigrams of a run of CJK characters ("深度学习" → 深度 度学 学习): terms for
    text written without spaces, needing no dictionary (Lucene's CJKAnalyzer does the same)."""
    return [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]


def opens_list(sentence: str) -> bool:
    """A sentence ending on its colon: the opening of what follows ("The model sizes are:")."""
    return sentence.rstrip().endswith((":", "："))


def split_sentences(text: str) -> list[str]:
    """Sentences (and heading lines) of ``text``, each on one line; used for excerpts, citations and cuts."""
    return [" ".join(s.split()) for s in SENTENCE_END.split(text) if len(s.strip()) > 1]



# A figure as papers write it: 14,100 · 0.95 · 2019. Digits right after a Latin letter belong to a name, not a
# quantity: a citation or figure tag (BIBREF1, FIGREF11), a footnote mark glued to its word, F1, BERT-L2. Counted
# as figures, such names let the reply state a number no passage gives ("The number of annotators was 1.").
NUMBER = re.compile(r"(?<![A-Za-z\d])(?<!\d[.,])\d+(?:[.,]\d+)*")


def figures(text: str) -> set[str]:
    """The numbers ``text`` writes, each as written and without thousands separators ("14,100" may be said
    "14100"); not its list numbering ("We ensure quality by: 1) …", "\n2. Method") nor the numbers of its
    tables, sections and findings ("Finding 1.4"), no more figures in a source than in a reply."""
    numbers = (m.group() for m in NUMBER.finditer(text) if not names_number(text, m.start(), m.end()))
    return {form for n in numbers for form in (n, n.replace(",", ""))}


def list_number(text: str, start: int, end: int, writing: bool = False) -> bool:
    """Whether ``text[start:end]`` numbers a list item rather than states a figure: one or two digits opening
    the text or a line, or after a colon or a sentence's end ("are: 1. PDF 2. Markdown"), followed by "." or
    ")" — or, ``writing``, by nothing yet."""
    if end - start > 2 or not text[start:end].isdigit():
        return False
    before, after = text[:start].rstrip(" \t"), text[end:end + 1]
    return (not before or before.endswith(("\n", ":", ".", ";"))) and (after in (".", ")") or writing and not after)


_LABEL = re.compile(r"\b(?:tables?|tab\.|figures?|figs?\.|sections?|sec\.|eqs?\.|equations?|appendix|algorithm|"
                    r"chapter|theorem|lemma|proposition|corollary|definition|finding|step|pp?\.)\s*$|§\s*$",
                    re.IGNORECASE)


def _label_number(text: str, start: int) -> bool:
    """Whether the number at ``start`` names a part of a document (Table 2, Section 3.1, Finding 1.4, p. 7)
    rather than states a figure: a source holding "Finding 1.4" does not say anything is 1.4. Words that also
    precede quantities ("for example 5 models", "at level 3") are left out: a wrongly freed figure is worse than a
    label held."""
    return bool(_LABEL.search(text[max(0, start - 24):start]))


def names_number(text: str, start: int, end: int, writing: bool = False) -> bool:
    """Whether ``text[start:end]`` numbers something rather than counts it, in a source as in a reply: a list's
    item (``list_number``) or a table, section or finding ("Table 2")."""
    return list_number(text, start, end, writing) or _label_number(text, start)


_MARKER_OPEN = re.compile(r"\[(?:\d{1,3},\s*)*$")  # "[", "[1, ": a source marker being written


def marker_number(text: str, start: int, end: int, writing: bool = False) -> bool:
    """Whether ``text[start:end]`` is a source marker's number ("[2]", "[1, 3]"), not a figure: 1–3 digits after
    "[" or a marker's comma, followed by "]" or "," — or, ``writing``, by nothing yet."""
    after = text[end:end + 1]
    return (end - start <= 3 and bool(_MARKER_OPEN.search(text[:start]))
            and (after in ("]", ",") or writing and not after))


_ESCAPE_OPEN = re.compile(r"\x1b[\[\]][\d;]*$")  # a terminal control sequence's parameters (shown stripped)


def free_number(text: str, start: int, end: int, writing: bool = False) -> bool:
    """A number that states no figure: a list's numbering, a source marker's, a table's or section's ("Table 2"), or
    a terminal escape's ("\x1b[2J" echoed from a hostile document)."""
    return (names_number(text, start, end, writing) or marker_number(text, start, end, writing)
            or bool(_ESCAPE_OPEN.search(text[:start])))


def stated_figures(reply: str) -> set[str]:
    """The numbers a reply states, as written: not its list numbering ("\n2. …", "are: 1. PDF 2. …") nor its
    source markers ("[2]")."""
    return {m.group() for m in NUMBER.finditer(reply) if not free_number(reply, m.start(), m.end())}

def is_chinese(text: str) -> bool:
    """Mostly CJK ideographs among its letters (a Chinese question, even with English terms in it)."""
    return cjk_share(text) >= 0.3


_YES_NO = re.compile(r"^(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|shall|may|might)\b",
                     re.IGNORECASE)
# "Can you describe ...", "Could you explain ...": a request for an explanation, not a yes/no question
_YOU = r"^(?:can|could|would|will)\s+you\b"
_REQUEST = re.compile(_YOU, re.IGNORECASE)


def is_yes_no(question: str) -> bool:
    """A judgmental question ("Does the paper report ...?"), answered yes or no first."""
    return bool(_YES_NO.match(question.strip())) and not _REQUEST.match(question.strip())


# "Can you (please) describe X?": the request with its verb, "you" and "please" left out; only verbs of
# asking for an account, since "Would you say ...?" or "Can you use X with Y?" ask a yes or no
_POLITE = re.compile(_YOU + r"\s+(?:please\s+)?(?=(?:describe|explain|tell|name|list|give|"
                     r"provide|summari[sz]e|outline|elaborate|clarify|show|define|compare|discuss|detail|identify|"
                     r"specify|walk|illustrate|contrast|break)\b)", re.IGNORECASE)


def as_request(question: str) -> str:
    """A request phrased as a question said as the request it is: "Can you describe X?" becomes
    "Describe X." A small model takes the question literally: the tuned SmolLM2-135M answered the ARAGOG
    dev question "Can you describe the modifications LLaMA makes ...?" with "Yes, I can.", and two of
    the 5 such rag-dataset questions (with and without retrieval) "Yes, ..." Other questions come back unchanged."""
    stripped = question.strip()
    if not (match := _POLITE.match(stripped)):
        return question
    rest = stripped[match.end():]
    return rest[0].upper() + rest[1:].rstrip("? ") + "."
