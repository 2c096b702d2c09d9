"""The deterministic teacher: questions read off a chunk's own structure, no model needed.

Definitions ("X is/are/denotes ..."), numeric facts with their units, statements about specialized
terms under their section title, yes/no pairs (a true statement, or one with a fact swapped, so
about half the answers are "no"), and comparisons of two passages of the same paper about one term.
Every answer quotes one sentence of the oracle verbatim, so the citation checker can verify it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ragqa.text import split_sentences
from retrieval.context import prompt_text
from retrieval.terms import find_terms

_DEFINITION = re.compile(
    r"^(?:(?:The|An?)\s+)?(?P<term>[A-Za-z][\w-]*(?:\s+[\w-]+){0,3}?)\s*(?:\([^)]{1,40}\)\s*)?,?\s+"
    r"(?P<verb>is|are|denotes|refers to|stands for|means|is defined as)\s+(?P<rest>.{8,})$")
_VERB_QUESTION = {"is": "What is {}?", "are": "What are {}?", "denotes": "What does {} denote?",
                  "refers to": "What does {} refer to?", "stands for": "What does {} stand for?",
                  "means": "What does {} mean?", "is defined as": "How is {} defined?"}
_NUMBER = re.compile(r"(?<![\w.])(?P<num>\d+(?:[.,]\d+)?)\s*(?P<unit>%|percent\b|[A-Za-z][A-Za-z-]{1,20})")
_ACRONYM = re.compile(r"^(?:[A-Z][A-Za-z0-9]*[A-Z][A-Za-z0-9-]*|[A-Z]+-?[0-9]+[A-Za-z0-9-]*)$")  # as in retrieval.terms
_NUMBERED = re.compile(r"^(theorem|lemma|corollary|section|sec\.|table|figure|fig\.|eq\.?|equation|algorithm|"
                       r"appendix|chapter|step|stage|phase|version|v)$", re.I)
_NOT_UNITS = {"et", "al", "and", "or", "of", "in", "the", "to", "a", "for", "with", "on", "is", "are", "we",
              "table", "figure", "fig", "section", "eq", "equation", "th", "st", "nd", "rd", "and"}
_PRONOUN_START = re.compile(r"^(it|this|these|they|that|those|such|here|there|however|thus|then|also|we|our|in|on|"
                            r"for|as|to|with|from|by|because|since|while|if|when|each|all|both|one)\b", re.I)
_NOT_DEFINING = re.compile(r"^(?:about|approximately|around|roughly|only|also|not|\d)", re.I)  # numeric or negated
_NEGATABLE = re.compile(r"\b(is|are|can|does|do|was|were|has|have)\b")
# "<subject> <verb>s <object>": the subject of up to four words, a third-person verb
_SVO = re.compile(r"^(?:(?:The|Our|This|An?)\s+)?(?P<subj>[A-Za-z][\w-]*(?:\s+[\w-]+){0,3}?)\s+"
                  r"(?P<verb>(?![a-z]*(?:is|us|ics)\b)[a-z]{3,}[^s\W]s)\s+(?P<obj>\w.{10,})$")  # not "analysis"


@dataclass
class Candidate:
    kind: str
    question: str
    short: str  # the answer's lead ("Yes.", "12 layers."); empty when the quote is the answer
    quote: str  # verbatim sentence of the oracle
    second: object = None  # comparison: the other passage's chunk
    second_quote: str = ""  # comparison: the sentence quoted from it
    rating: float | None = None  # teacher self-rating (model teachers only)
    alt: "Candidate | None" = None  # the same fact asked the other way (a yes/no question's "no" twin)


_JUNK = re.compile(r"[\"“”]|\[\d|\]\(|https?:|\$|_\{|\*\*|\b(?:BIBREF|TABREF|FIGREF)\d|^\d")


def usable_sentences(text: str) -> list[str]:
    """Sentences worth quoting: whole, prose-like, opening with a capital; no inner quotes,
    reference markers, Markdown links, formulas, or a heading glued to the front ('6 Conclusion …')."""
    out = []
    for s in split_sentences(prompt_text(text)):
        n = len(s.split())
        letters = sum(c.isalpha() for c in s) / max(1, len(s))
        if 6 <= n <= 45 and 12 <= len(s) <= 380 and letters > 0.6 and not _JUNK.search(s) \
                and s[-1] in ".!?" and s[0].isupper():
            out.append(s)
    return out


def short_title(title: str, words: int = 8) -> str:
    parts = title.split()
    return " ".join(parts[:words]) + ("…" if len(parts) > words else "")


def section_name(section: str) -> str:
    """The heading without numbering ('3.1 Pre-training BERT' -> 'Pre-training BERT')."""
    return re.sub(r"^[#\s]*(?:[A-Z]|\d+(?:\.\d+)*)[.)]?\s+(?=[A-Z])", "", section).strip()


class DeterministicTeacher:
    """Questions from a chunk's structure; ``propose`` never fails and never calls a model."""

    name = "deterministic"
    needs_background = False

    def propose(self, chunk, helper, kinds: list[str]) -> list[Candidate]:
        sentences = usable_sentences(chunk.text)
        makers = {"definition": self._definitions, "numeric": self._numerics, "factual": self._factuals,
                  "judgmental": self._judgmentals, "comparison": self._comparisons}
        out = []
        for kind in kinds:
            out += makers[kind](chunk, sentences, helper)
        return out

    def _definitions(self, chunk, sentences, helper) -> list[Candidate]:
        out = []
        for s in sentences:
            m = _DEFINITION.match(s)
            if not m or _PRONOUN_START.match(m["term"]) or _NOT_DEFINING.match(m["rest"]) \
                    or not find_terms(m["term"], helper.vocab, 1):
                continue
            term = m["term"] if s.startswith(m["term"]) else "the " + m["term"]  # keep "the" of "The X is"
            question = _VERB_QUESTION[m["verb"]].format(term)
            out.append(Candidate("definition", question, "", s))
        return out[:2]

    def _numerics(self, chunk, sentences, helper) -> list[Candidate]:
        out = []
        for s in sentences:
            m = next((m for m in _NUMBER.finditer(s) if _is_measure(m)), None)
            if m is None:
                continue
            left = s[:m.start()].split()[-7:]
            right = s[m.end():].rstrip(".").split()[:5]
            blank = " ".join(left + (["___%"] if m["unit"] == "%" else ["___", m["unit"]]) + right)
            what = "percentage" if m["unit"] in ("%", "percent") else "number"
            question = f'In {short_title(chunk.title)}, what {what} fills the blank in "{blank}"?'
            out.append(Candidate("numeric", question, f"{m['num']} {m['unit']}.".replace(" %", "%"), s))
        return out[:2]

    def _factuals(self, chunk, sentences, helper) -> list[Candidate]:
        """'What does <subject> <verb>?' when a sentence opens with a specialized subject and a verb,
        else what the section says about the sentence's most specialized term."""
        section = section_name(chunk.section)
        where = f'the "{section}" section of {short_title(chunk.title)}' if section else short_title(chunk.title)
        out = []
        for s in sentences:
            if _DEFINITION.match(s):
                continue
            m = _SVO.match(s)
            if m and not _PRONOUN_START.match(m["subj"]) and find_terms(m["subj"], helper.vocab, 1) \
                    and (question := svo_question(m, s)):
                out.append(Candidate("factual", question, "", s))
            elif terms := term_options(s, helper.vocab):
                out.append(Candidate("factual", f"What does {where} say about {terms[0]}?", "", s))
        return out[:2]

    def _judgmentals(self, chunk, sentences, helper) -> list[Candidate]:
        """A true statement asked as yes/no, with its false twin (a fact swapped) as ``alt``: the
        generator keeps whichever answer is rarer so far, so about half are "no"."""
        out = []
        for s in sentences:
            if _PRONOUN_START.match(s) or len(s.split()) > 30:
                continue
            yes = Candidate("judgmental", f"Is it true that {_as_clause(s)}?", "Yes.", s)
            if false := swap_fact(s):
                yes.alt = Candidate("judgmental", f"Is it true that {_as_clause(false)}?", "No.", s)
            out.append(yes)
            if len(out) == 2:
                break
        return out

    def _comparisons(self, chunk, sentences, helper) -> list[Candidate]:
        tried = 0
        for s in sentences:
            for term in term_options(s, helper.vocab)[:2]:
                if tried == 3:  # each try is a search: bound the cost per chunk
                    return []
                tried += 1
                other = helper.companion(chunk, term)
                pattern = re.compile(rf"\b{re.escape(term)}\b", re.I)
                match = other and next((t for t in usable_sentences(other.text) if pattern.search(t) and t != s), None)
                if match:
                    question = (f"How do two passages of {short_title(chunk.title)} differ in what they say "
                                f"about {term}?")
                    return [Candidate("comparison", question, "", s, other, match)]
        return []


def _is_measure(m: re.Match) -> bool:
    """A number with a unit: not a year, a reference, a section or figure number."""
    unit = m["unit"].lower()
    before = m.string[:m.start()].split()[-1:]
    if before and _NUMBERED.match(before[0]):  # "Theorem 1 gives", "Table 3 shows": a label, not a measure
        return False
    if unit in _NOT_UNITS or (re.fullmatch(r"(19|20)\d\d", m["num"]) and unit != "%"):
        return False
    return m["unit"] in ("%",) or unit.isalpha() or "-" in unit


# what a subject of up to four words cannot hold: a heading glued to its front ("Architectures The above
# investigations provide", "EXPERIMENTAL SETUP We focus"), a number, a verb ("This model has 10 conv
# layers") or a word that ties on another phrase ("The weights of these shortcut connections are": the
# plural noun is no verb)
_NOT_IN_SUBJECT = re.compile(r"(?<![\w-])\d|\b(?:The|A|An|We|of|these|those|the|to|in|for|with|from|on|by|and|or|has|"
                             r"have|had|is|are|was|were|not)\b|\b[A-Z]{2,}\s+[A-Z]{2,}\b")  # "GPT-2" is a name
# what shows the "verb" was a noun after all ("Adding max-norm constraints did not give ...") or takes a
# further verb ("A weight decay tends to push ..."), and the prepositions a question keeps ("consists of")
_NOT_AN_OBJECT = re.compile(r"^(?:did|do|does|is|are|was|were|can|could|will|would|have|has|had|not|to|"
                            r"\w+ly \w+ed|(?:learn|tend|need|try|seem|fail|help|aim|attempt|continue|begin|"
                            r"start|appear|manage)s? to)\b")  # "Multiplicative gate units learn to open ..."
_KEPT_PREPOSITION = re.compile(r"^(of|on|in|from|with|into)\b")


def svo_question(m: re.Match, sentence: str) -> str:
    """"What does <subject> <verb>?" from ``_SVO``'s match, or '' when the match is no subject and verb
    ("What does the weights of these shortcut connection?", "What does the model has 10 conv layer?"
    were written so); a preposition the verb needs is kept ("What does a BiRNN consist of?")."""
    subj, obj = m["subj"], m["obj"]
    if _NOT_IN_SUBJECT.search(subj) or _NOT_AN_OBJECT.match(obj):
        return ""
    subj = _as_clause(subj) if sentence.startswith(subj) else "the " + subj
    tail = f" {kept[1]}" if (kept := _KEPT_PREPOSITION.match(obj)) else ""
    return f"What does {subj} {_base_form(m['verb'])}{tail}?"


def _base_form(verb: str) -> str:
    """"builds" -> "build", "matches" -> "match", "applies" -> "apply"."""
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    return verb[:-2] if re.search(r"(?:ch|sh|x|ss|zz)es$", verb) else verb[:-1]


def _as_clause(sentence: str) -> str:
    """'We train BERT on 16 TPUs.' -> 'the authors train BERT on 16 TPUs' (for 'Is it true that ...')."""
    s = sentence.rstrip(".!?") if sentence[-1:] in ".!?" else sentence
    s = re.sub(r"^We\b", "the authors", s)
    s = re.sub(r"\bwe\b", "the authors", s)
    s = re.sub(r"\b[Oo]ur\b", "their", s)
    first, *rest = s.split()
    if not (first.isupper() or any(c.isupper() for c in first[1:]) or rest[:1] and rest[0][:1].isupper()):
        # keep acronyms, CamelCase and capitalised names ("Batch Normalization helps …")
        s = s[0].lower() + s[1:]
    return s


def term_options(sentence: str, vocab) -> list[str]:
    """The sentence's specialized terms, most useful first: acronyms (also those inside a detected
    phrase such as 'train BERT'), then phrases of up to 3 words, then rare words (often just
    uncommon verbs)."""
    terms = find_terms(sentence, vocab, 3)
    acronyms = [w for t in terms for w in t.text.split() if _ACRONYM.match(w)]
    phrases = [t.text for t in terms if t.kind == "phrase" and len(t.text.split()) <= 3]
    rare = [t.text for t in terms if t.kind == "rare"]
    return list(dict.fromkeys(acronyms + phrases + rare))


def swap_fact(sentence: str) -> str:
    """The sentence made false: a number changed, else a verb negated; '' when neither applies."""
    m = next((m for m in _NUMBER.finditer(sentence) if _is_measure(m)), None)
    if m:
        num = m["num"].replace(",", "")
        changed = str(int(num) * 2) if num.isdigit() else f"{float(num) * 2:g}"
        return sentence[:m.start("num")] + changed + sentence[m.end("num"):]
    v = _NEGATABLE.search(sentence)
    if v and " not " not in sentence:
        return sentence[:v.end()] + " not" + sentence[v.end():]
    return ""
