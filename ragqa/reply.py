"""What a model's reply shows: its first sentences that say something, a yes/no verdict first.

Shared by answering (``ragqa.answer``) and training data (``finetune``: a target is shaped as an
answer is), so it sits in the base layer.
"""
from __future__ import annotations

import re
from difflib import SequenceMatcher

from ragqa.citations import word_stems
from ragqa.config import AnswerConfig
from ragqa.text import (NOT_AN_END, NUMBER, SENTENCE_END, SYSTEM_RAG, YES_NO_HINT, figures, free_number, is_yes_no,
                        opens_list)

# a sentence ends at . ! ? before a capital or digit, but not after a list number ("1.", "12."); at a
# blank line; after a line ending on a colon (an opening: "The answer is:\n\n"); and before a list item
# on its own line ("\n- BooksCorpus", "\n2. SwiGLU": each item counts as a sentence)
_REPLY_END = re.compile(NOT_AN_END + r"(?<!^\d\.)(?<![\s(]\d\.)(?<![\s(]\d\d\.)(?<=[.!?])\s+(?=[A-Z0-9(\[\"“])|(?<=[。！？])\s*"
                        r"|(?<=[:：])[ \t]*\n\s*|[ \t]*\n[ \t]*\n\s*|[ \t]*\n[ \t]*(?=(?:\d{1,2}[.)]|[-*•])\s)")
_ITEM = re.compile(r"(?:\d{1,2}[.)]|[-*•])\s")  # a list item's opening ("2. ", "- ")
_ITEM_NUMBER_LEFT = re.compile(r"(?:^|\s+)\d{1,2}[.)]$")  # a list item's number with its text cut off
_ENDS = ".!?。！？:;)]\"”'’*"  # what a finished sentence ends on ("... layers [2]", "**SwiGLU**" too)
_VERDICT = re.compile(r"\W*(yes|no)\b", re.IGNORECASE)
NO_REPLY = "(No answer: the model's reply only repeated the question or said nothing.)"
NO_REPLY_ZH = "（没有回答：模型只重复了问题。）"
# "The answer (to this question) is": a filler where it opens a sentence (echo tests read past it), a preamble
# where it opens the reply before the answer itself (left out: see without_preamble)
_ANSWER, _TO_QUESTION = r"(?:the\s+)?answer", r"\s+to\s+(?:this|the|your)\s+question"
_FILLER = re.compile(rf"^\W*(?:{_ANSWER}(?:{_TO_QUESTION})?\s+is\b|(?:\d+(?:\.\d+)*[.):]\s*)+)", re.IGNORECASE)
# a sentence whose content is a pointer to sources ("The dataset used in this work is [1].",
# "The features extracted are [1], [2], [3], [4]."): with the markers gone it ends on a function word
_MARKERS = re.compile(r"\(?(?:see\s+)?(?:\[\d+(?:\s*[,;]\s*\d+)*\][,;\s]*(?:and\s+)?)+\)?", re.IGNORECASE)
_DANGLING = re.compile(r"\b(is|are|was|were|be|from|in|by|of|the|a|an|to|as|at|on|and|with|include|includes)"
                       r"\W*$", re.IGNORECASE)
# one number, with a decimal part, thousands or a percent sign, and nothing else: what list debris is not
_VALUE = re.compile(r"\W*(?:\d{1,3}(?:,\d{3})+|\d+\.\d+|\d{2,})(?:\s*%)?[.!]?\s*$")
_NEGATION = re.compile(r"\b(not|no|never|none|neither|nor|cannot|\w+n't)\b", re.IGNORECASE)
# a source header of the prompt ("[2] (bert.pdf, p. 3)", see retrieval.store.Chunk.location) said again,
# with its number or without ("PAL (PAL.pdf, p. 7)", "(LLM_long_tail.pdf, p. This involves": 6 of 71
# ARAGOG dev replies of the shipped adapter), or without its parenthesis ("… other models. -PAL.pdf, p.")
# or the source numbers counted out ("[1] [2] [3] [4] [5] ... [21]": the shipped adapter's list items ran
# on so until the loop stop, 200 tokens)
_SOURCE_HEADER = re.compile(r"\[\d+\]\s*\([^()\n]*?,\s*p\.|\(?[\w.\-]+\.(?:pdf|md|markdown|txt|html?),\s*p\."
                            r"|(?:\[\d+\][,;]?\s*){4}")
# while streaming, what may still become one ("[2] (bert.pdf,"): held back, since shown text cannot be taken back
# "[", "[2", "[2]", "[2] (bert.pdf,"; "(bert", "(bert.pdf, p" (a word in parentheses waits for its end)
_PARTIAL_HEADER = re.compile(r"\[\d*(?:\]\s*(?:\([^()\n]*)?)?$|\([\w\-]*(?:\.\w*)?(?:,\s*p?)?$")


# a preamble before the answer itself ("The answer to this question is: PAL handles ...": 6 of 71 ARAGOG dev
# replies of the shipped adapter, 1 of the untuned model's), and what may still become one while streaming
_PREAMBLE = re.compile(rf"\s*{_ANSWER}(?:{_TO_QUESTION}\s+is\b\s*(?::|that\b)?|\s+is\s*:)\s*", re.IGNORECASE)
_PREAMBLES = [f"the answer to {w} question is:" for w in ("this", "the", "your")] + ["the answer is:"]


def without_preamble(raw: str, final: bool = True) -> str:
    """``raw`` without a preamble in front of the answer; while streaming (``final=False``), empty as
    long as it may still become one ("The answer to"), since shown text cannot be taken back."""
    if match := _PREAMBLE.match(raw):
        rest = raw[match.end():]
        return rest[:1].upper() + rest[1:]
    opening = " ".join(raw.split()).lower()
    if not final and opening and any(p.startswith(opening) for p in _PREAMBLES):
        return ""
    return raw


def shape(raw: str, question: str, config: AnswerConfig, final: bool = True, lead: str = "",
          held: set[str] | None = None) -> str:
    """The model's reply as shown: its first ``answer.max_sentences`` sentences (small models run on
    into lists and loops after the answer) that say something (``empty_reply``: not list debris, not
    the question or the lead quote said again), and for a yes/no question (``answer.yes_no_hint``) a
    reply that restates instead of answering ("The lexicon is the same for all languages.") opened
    with the verdict it states. While streaming (``final=False``) the unfinished last sentence is
    kept unless it is empty so far or a fragment of one or two words, and a yes/no reply is held back
    until its first sentence is complete.

    ``held`` (the word stems of the sources and question, ``held_words``): after the first
    sentence that says something, the reply goes on only with sentences whose every content word is held;
    the first that brings in another word ends it (``answer.words_from_sources``). While streaming, such later
    sentences show once complete and checked.
    """
    raw = without_preamble(before_source_echo(raw if final else _PARTIAL_HEADER.sub("", raw)), final)
    verdict = config.yes_no_hint and is_yes_no(question)
    if not config.max_sentences and not verdict:
        return raw.strip() if final else raw
    sentences = reply_sentences(raw.replace("\ufffd", ""))  # a character cut mid-token shows as U+FFFD
    if not sentences:
        return ""  # nothing yet, or only a source list written out
    complete = sentences if final else sentences[:-1]
    if verdict and not complete:
        return ""  # held back until the first sentence shows which verdict it states
    keep = _said(sentences, question, lead, config.drop_empty, final)
    if verdict:
        keep[0] = True  # the restatement a verdict is read from ("The lexicon is the same ...") answers it
    done, counted, over = _shown(complete, keep, config.max_sentences or len(sentences), held)
    # the unfinished sentence streams once it is no echo in the making (compared with the start of the
    # question) and no fragment a source-list echo may yet cut off ("The [1] ("); a later one that must
    # use only held words waits until it is complete (shown text cannot be taken back)
    tail = (sentences[-1:] if not final and not over and keep[-1] and not _fragment(sentences[-1])
            and not (held is not None and counted) else [])
    out = done + tail
    if verdict and not stated_verdict(complete[0]):
        out.insert(0, "No." if _NEGATION.search(complete[0]) else "Yes.")
    return _join(out)


def _shown(complete: list[str], keep: list[bool], limit: int, held: set[str] | None) -> tuple[list[str], int, bool]:
    """The complete sentences shown, how many count (a list's opening counts with what it opens), and
    whether the reply is over: ``limit`` sentences counted, or a sentence after the first counted one
    that uses a word ``held`` lacks (a 135M model's later sentences run on from memory: "LLaMA-I uses a
    sinusoidal-wave-based positional encoding", "the Random Perturbation Detect (RPD) algorithm")."""
    done, counted = [], 0
    for x, k in zip(complete, keep):
        if not k:
            continue
        if counted >= limit or counted and held is not None and word_stems(x) - held:
            return done, counted, True
        done.append(x)
        counted += not opens_list(x)
    return done, counted, counted >= limit


def held_words(question: str, sources: list[str], config: AnswerConfig) -> set[str] | None:
    """The word stems a reply's later sentences may use (``answer.words_from_sources``, read by ``shape`` and
    ``reply_complete``): those of the question and of the sources as the model was shown them. None (nothing
    checked) without sources: a reply from memory has nothing to be held to."""
    if not (config.words_from_sources and sources):
        return None
    return word_stems("\n".join([question, *sources]))


def _said(sentences: list[str], question: str, lead: str, drop_empty: bool, final: bool) -> list[bool]:
    """Which sentences say something: not ``empty_reply``, not a sentence already said (a reply running
    in a loop: "The answer is:" ten times), and not a list's opening with nothing after it that says
    something ("The model sizes reported for BERT are:" and the reply ends, or only fillers follow)."""
    keep, seen = [], set()
    for i, sentence in enumerate(sentences):
        partial = not final and i == len(sentences) - 1
        core = _core(sentence)
        keep.append(not drop_empty or not (empty_reply(sentence, question, lead, partial) or core in seen))
        seen.add(core)
    if final and drop_empty and len(sentences) > 1 and any(keep[:-1]) and _unfinished(sentences[-1]):
        keep[-1] = False  # cut mid-sentence by the loop stop or the token limit ("... encountered during pre")
    if drop_empty:  # an opening shows once what it opens says something (while streaming: held back till then)
        said_after = False
        for i in reversed(range(len(sentences))):
            if opens_list(sentences[i]):
                keep[i] = keep[i] and said_after
            else:
                said_after = said_after or keep[i]
    return keep


def _unfinished(sentence: str) -> bool:
    """A sentence without its end (a list item needs none: "2. **SwiGLU**")."""
    return sentence.rstrip()[-1:] not in _ENDS and not _ITEM.match(sentence)


def _join(sentences: list[str]) -> str:
    """Sentences as one reply; a list item goes on its own line, as the model wrote it."""
    out = ""
    for sentence in sentences:
        out += ("\n" if out and _ITEM.match(sentence) else " " if out else "") + sentence
    return out


def reply_complete(raw: str, question: str, config: AnswerConfig, lead: str = "",
                   held: set[str] | None = None) -> bool:
    """Whether the reply so far holds all that will be shown: ``answer.max_sentences`` complete
    sentences that say something (the next one has begun), or the start of the source list written
    out, or (``held``, as ``shape`` reads it) a later sentence using a word the sources lack. Generation
    stops there, streamed or batched, so an answer is the same either way and the model does not spend
    tokens (or run into its loop stop) on text that is cut."""
    if echoes_sources(raw):
        return True
    if not config.max_sentences:
        return False
    sentences = reply_sentences(raw)
    keep = _said(sentences, question, lead, config.drop_empty, final=False)
    return _shown(sentences[:-1], keep, config.max_sentences, held)[2]  # the last one may still grow


def stated_verdict(text: str) -> str:
    """The verdict ``text`` opens with: 'yes', 'no', or '' when it opens with neither."""
    match = _VERDICT.match(text)
    return match[1].lower() if match else ""


def before_source_echo(raw: str) -> str:
    """The reply up to where it starts writing out the prompt's source list ("The [1] (bert.pdf,
    p. 14)\n[2] (2017) as well as ..."): what follows is passages copied under a header, not an
    answer. It happened in ~10% of ARAGOG dev replies, tuned or not. A fragment of one or two words
    the echo interrupted ("The") goes too."""
    echo = _SOURCE_HEADER.search(raw)
    if echo is None:
        return raw
    start = echo.start()
    line = raw.rfind("\n", 0, start) + 1
    if len(raw[line:start].split()) <= 2:  # a header line's own opening ("PAL (PAL.pdf, p. 7)") goes with it
        start = line
    head = raw[:start].rstrip()
    sentences = reply_sentences(head)
    if sentences and _fragment(sentences[-1]):
        head = head[:head.rfind(sentences[-1])]
    return head.strip()  # line breaks kept: they still end sentences (reply_sentences)


def _fragment(sentence: str) -> bool:
    """One or two words with no sentence end ("The"): what a source-list echo interrupts."""
    return sentence[-1:] not in ".!?。！？\"”')" and len(sentence.split()) < 3


def echoes_sources(raw: str) -> bool:
    """The reply has begun writing out the prompt's source list: nothing after it is shown."""
    return _SOURCE_HEADER.search(raw) is not None


def empty_reply(sentence: str, question: str, lead: str = "", partial: bool = False) -> bool:
    """A reply sentence that tells the reader nothing: list debris ("1. 1. 1.", "？？？"), a filler
    opening alone ("The answer to this question is:"), the question asked again ("The answer is:
    玩家用什么泡封敌人？"), source numbers where the answer should be ("The baselines used are [1],
    [2], [3]."; a model tuned on Qwen2.5-Coder's replies wrote them), the instruction said back ("The
    dataset, in one or two short sentences."), or the lead quote said again near verbatim. A statement
    that restates the question ("LLaMA's training data differs from ... in several ways.") stays:
    gold answers open that way too, and dropping those cost ARAGOG dev 0.03 semantic similarity.
    SmolLM2 answering Chinese questions produced mostly empty sentences (bench/chinese.py).
    ``partial``: the sentence is still being generated; it is compared with the start of what was said
    (an echo in the making stays held back while streaming)."""
    core = _core(sentence)
    if _VALUE.match(sentence):  # a value alone ("97.6%", "14,100.") answers a question of how many
        return False
    if len(core) < 2 or not re.search(r"[^\W\d_]", sentence):  # no letter at all ("1. 1. 1.", "6. 6.1 7. 7.1")
        return True
    if any(clause in core for clause in _INSTRUCTION_CLAUSES):
        return True
    # while streaming too: "The two tasks are [1]" is held back until the sentence shows it says more
    if _MARKERS.search(sentence) and _DANGLING.search(_MARKERS.sub("", sentence).rstrip(" .,;:")):
        return True
    asked = _core(question)
    end = sentence.rstrip()[-1:]
    unfinished = partial or _unfinished(sentence)  # still streaming, or cut by the token limit
    if (end in "?？" or unfinished) and _near(core, asked, unfinished):
        return True
    return bool(lead) and _near(core, _core(lead), partial)


def _near(core: str, ref: str, partial: bool) -> bool:
    ref = ref[:len(core) + 4] if partial else ref
    return len(ref) >= 2 and (core in ref or SequenceMatcher(None, core, ref).ratio() >= 0.85)


def _core(text: str) -> str:
    """Letters and digits of ``text`` without a filler opening, lowercased: what echo tests compare."""
    return re.sub(r"[\W_]+", "", _FILLER.sub("", text.lower()))


# the built-in instruction's clauses of three words or more, as _core reads them: a reply sentence holding one
# says the instruction back ("The dataset, in one or two short sentences.": 3 of 99 QASPER and ARAGOG dev
# replies under beam search, 1 of 91 rag-dataset replies greedily)
_INSTRUCTION_CLAUSES = [_core(clause) for clause in re.split(r"[.,;[]", f"{SYSTEM_RAG} {YES_NO_HINT}")
                        if len(clause.split()) >= 3]


def reply_sentences(raw: str) -> list[str]:
    """The reply's sentences, split at sentence punctuation, at a blank line, after a line that ends on
    a colon ("The answer to this question is:\n\n...") and before a list item on a line of its own:
    a list number inside a line ("are: 1. PDF", "(.pdf) 2. Markdown") ends no sentence."""
    pieces, start = [], 0
    for end in _REPLY_END.finditer(raw):
        pieces.append(raw[start:end.start()])
        start = end.end()
    return [p.strip() for p in pieces + [raw[start:]] if p.strip()]


def unheld_figures(raw: str, held: set[str]) -> list[str]:
    """``raw`` up to each figure it states that is not ``held`` (``figures`` of the question and the sources shown):
    the cuts a model held to the sources' figures as it writes would have recorded (``before_refused_figure``),
    found after the fact for one that cannot be held (a server behind an OpenAI-compatible API)."""
    return [raw[:m.start()] for m in NUMBER.finditer(raw)
            if not free_number(raw, m.start(), m.end()) and not figures(m.group()) & held]


def before_refused_figure(raw: str, cuts: list[str]) -> str:
    """``raw`` up to the sentence in which the model was refused a figure its sources lack: each cut is the
    reply as it stood there (``TransformersGenerator.number_cuts``). That sentence says a figure that is not
    the model's ("The dataset is approximately 1." where it wanted 1.2 million), and what follows was written
    after it, from a derailed sentence ("The sources you provided are indeed accurate …"), so the reply ends
    before it. A cut ``raw`` does not begin with was on a path not taken (a draft token rejected)."""
    at = [len(cut) for cut in cuts if raw.startswith(cut) and raw]
    if not at:
        return raw
    offset = min(at)  # where the refused token would have gone: in the sentence being written there
    q = min(offset if raw[offset - 1:offset].isspace() or not offset else offset - 1, len(raw) - 1)
    # sentences as text.split_sentences reads them: "approximately 1. It is …" is two, where the reply's own
    # splitter reads " 1. " as list numbering
    start = max([0] + [m.end() for m in SENTENCE_END.finditer(raw) if m.end() <= q])
    # nor the number of a list item whose text was that sentence ("2. MBPP: 7B to 13B 3.")
    return _ITEM_NUMBER_LEFT.sub("", raw[:start].rstrip())
