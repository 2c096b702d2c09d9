"""In-process causal LMs with transformers: the one loader (precision, adapter) and the generator.

``load_causal_lm`` is shared by answering and training, so fp32/bf16/fp16/int8/nf4 and adapters
are handled in one place.
"""
from __future__ import annotations

import importlib.util
import json
import re
import threading
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Iterator

from ragqa.config import GeneratorConfig, cpu_has_bf16, default_threads, resolve_adapter
from ragqa.errors import ConfigError, GeneratorError
from ragqa.generators._gguf import resolve_model
from ragqa.text import NUMBER, figures, free_number, list_number, marker_number, names_number

Messages = list[dict]


def load_causal_lm(config: GeneratorConfig | None = None, trainable: bool = False):
    """The model and tokenizer ``config`` names, in its precision, with its adapter attached.

    One loader for answering and training. ``trainable`` keeps an attached adapter's weights
    trainable (for ``--resume`` of a LoRA run) and skips int8, which cannot be trained.
    """
    import torch

    c = config or GeneratorConfig()
    torch.set_num_threads(c.threads or default_threads())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = _precision(c.precision, device)
    tokenizer, model = _load(resolve_model(c.model), c.model, precision, device)
    if adapter := resolve_adapter(c.model, c.adapter):
        model = _with_adapter(model, adapter, c.model, trainable)
    if precision == "int8" and not trainable:
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model, tokenizer


class TransformersGenerator:
    """A causal LM run in-process by transformers (CPU or CUDA)."""

    def __init__(self, config: GeneratorConfig | None = None):
        import torch

        self.config = c = config or GeneratorConfig()
        self.model, self.tokenizer = load_causal_lm(c)
        self.model.eval()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.precision = _precision(c.precision, self.device)
        # prompt lookup verifies 10 drafted tokens per pass: cheap where a pass is bound by reading
        # bf16 weights, a loss in fp32 on CPU where the extra compute shows (bench/answer.py)
        lookup = c.prompt_lookup
        self.prompt_lookup = lookup if lookup >= 0 else (0 if self.precision == "fp32" and self.device == "cpu" else 10)
        adapter = resolve_adapter(c.model, c.adapter)
        self.name = c.model + (f" + {adapter}" if adapter else "")
        self.tuned = bool(adapter)
        # per reply of the last call (the rows of a batch, or the one streamed): whether the loop stop cut it;
        # each answer records its own (ragqa.answer), and evaluation sums them per arm
        self.looped: list[bool] = []
        # per reply of the last generate_batch: the reply so far wherever a figure the sources lack was refused
        # (_NumbersFrom); a streamed reply carries its own (StreamedReply.number_cuts)
        self.number_cuts: list[list[str]] = []
        self._local = threading.local()  # per-thread switches (numbers_from): the chat serves threads

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def untuned(self):
        """A context in which this generator replies as its base model, adapter switched off (the same
        weights in memory: nothing is loaded). Without an adapter it changes nothing."""
        from contextlib import nullcontext

        return self.model.disable_adapter() if self.tuned else nullcontext()

    def _ends(self) -> set[int]:
        """The reply's end tokens and the pad token: what a finished row of a batch holds."""
        return stop_ids(self.tokenizer, self.model) | ({self.tokenizer.pad_token_id} - {None})

    def prompt_ids(self, messages: Messages):
        if self.tokenizer.chat_template:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                     return_tensors="pt", return_dict=True)["input_ids"]
        else:  # base models (Gemma 3 270M) have no template: a plain Q/A layout they continue well
            ids = self.tokenizer(plain_prompt(messages), return_tensors="pt").input_ids
        return ids.to(self.model.device)

    def batch_ids(self, chats: list[Messages]):
        """Left-padded token ids of several chats, each encoded as ``prompt_ids`` encodes it alone."""
        texts = [self.tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                 if self.tokenizer.chat_template else plain_prompt(m) for m in chats]
        side, self.tokenizer.padding_side = self.tokenizer.padding_side, "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token_id = self.tokenizer.eos_token_id
        try:
            # a chat template writes its own BOS; a plain prompt needs the tokenizer's
            return self.tokenizer(texts, return_tensors="pt", padding=True,
                                  add_special_tokens=not self.tokenizer.chat_template).to(self.model.device)
        finally:
            self.tokenizer.padding_side = side

    @property
    def beams(self) -> int:
        """Beams a greedy reply is searched with (``generator.num_beams``; 1 under sampling)."""
        return self.config.num_beams if self.config.temperature == 0 else 1

    def generate_batch(self, chats: list[Messages], max_new_tokens: int | None = None, samples: int = 0,
                       temperature: float = 0.7, done: list | None = None) -> list[str]:
        """Replies to several chats in one left-padded batch (no streaming): one greedy (or beam-searched,
        ``beams``) reply per chat, or with ``samples`` that many sampled at ``temperature`` per chat, grouped
        by chat. ``done[i](text)``: chat i's reply so far is complete, its row stops (the rest go on)."""
        import torch

        enc = self.batch_ids(chats)
        prompt_len, beams = enc.input_ids.shape[1], 1 if samples else self.beams
        loop = _LoopStop(prompt_len, decode=self.tokenizer.decode, ends=self._ends())
        criteria = [loop]
        if done:  # a beam search asks it of each of its candidates, afresh at every step
            criteria.append(_DoneStop(prompt_len, self.tokenizer.decode, done, remember=beams == 1))
        if samples:
            decoding = dict(do_sample=True, temperature=temperature, top_p=0.95, top_k=None,
                            num_return_sequences=samples)
        else:
            decoding = dict(do_sample=False, temperature=None, top_p=None, top_k=None)
            if beams > 1:  # a candidate the criteria stop is a finished hypothesis, as one ending on EOS
                decoding.update(num_beams=beams, early_stopping=True)
        processors = self._processors(prompt_len, greedy=not samples and beams == 1)
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens or self.config.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id, stopping_criteria=criteria,
                                      logits_processor=processors, **decoding)
        replies = out[:, prompt_len:]
        # beam search reorders its rows at every step: which reply the loop stop cut is read off the reply
        self.looped = [loop.looped(row.tolist()) for row in replies] if beams > 1 else \
            [row in loop.fired for row in range(out.shape[0])]
        self.number_cuts = _number_cuts(processors, len(enc.input_ids) * beams * (samples or 1), len(replies))
        return self.tokenizer.batch_decode(replies, skip_special_tokens=True)

    def _processors(self, prompt_len: int, greedy: bool = False):
        from transformers import LogitsProcessorList

        penalty, growth = self.config.reply_repeat_penalty, self.config.reply_repeat_growth
        processors = LogitsProcessorList([_ReplyRepeatPenalty(prompt_len, penalty, growth=growth)] if penalty else [])
        if not self.config.reply_markers and self._bracket_ids:
            from transformers import SuppressTokensLogitsProcessor

            processors.append(SuppressTokensLogitsProcessor(self._bracket_ids, device=self.model.device))
        if self._colon_ids:  # a reply never ends on an opening ("The answer to this question is:")
            processors.append(_NoEndAfterOpening(prompt_len, self._colon_ids, sorted(self._ends()), self.model.device))
        if texts := getattr(self._local, "numbers_from", None):
            digits, others, dot, comma, paren = self._number_tokens
            processors.append(_NumbersFrom(texts, prompt_len, self.tokenizer.decode, digits, others, dot, comma, paren,
                                           greedy=greedy))
        return processors

    @contextmanager
    def numbers_from(self, texts: list[str]):
        """Calls made within it (in this thread) write replies stating only numbers that ``texts`` (one per chat
        of the call) hold (``_NumbersFrom``): the answer pipeline's replies from sources
        (``answer.numbers_from_sources``)."""
        before = getattr(self._local, "numbers_from", None)
        self._local.numbers_from = texts
        try:
            yield
        finally:
            self._local.numbers_from = before

    @cached_property
    def _number_tokens(self):
        """(id, text) of the tokens holding a digit; a tensor of the other ids; the ids of ".", "," and ")" alone."""
        import torch

        digits = token_ids(self.tokenizer, lambda text: bool(re.search(r"\d", text)))
        texts = self.tokenizer.convert_ids_to_tokens(digits)
        digit_tokens = [(i, self.tokenizer.convert_tokens_to_string([t])) for i, t in zip(digits, texts)]
        others = torch.ones(len(self.tokenizer), dtype=torch.bool)
        others[digits] = False
        single = [self.tokenizer.convert_tokens_to_ids(t) for t in (".", ",", ")")]
        return (digit_tokens, others.nonzero()[:, 0].to(self.model.device),
                *(i if i != self.tokenizer.unk_token_id else None for i in single))

    @cached_property
    def _bracket_ids(self) -> list[int]:
        """The tokens that hold "[": what a source marker ("[1]", " [2]") is written with."""
        return token_ids(self.tokenizer, lambda text: "[" in text)

    @cached_property
    def _colon_ids(self) -> list[int]:
        """The tokens whose text ends on a colon (":", " is:", ":\n", "："): what an opening ends with."""
        return token_ids(self.tokenizer, lambda text: text.rstrip().endswith((":", "：")))

    def loglik(self, messages: Messages, continuation: str) -> float:
        """Mean log-probability per token of ``continuation`` as the reply (multiple-choice scoring)."""
        return self.loglik_batch([messages], continuation)[0]

    def loglik_batch(self, chats: list[Messages], continuation: str) -> list[float]:
        """``loglik`` of one ``continuation`` after each of several chats, in one left-padded pass:
        the continuation ends every row, so only its logits are computed, not the prompts' (reranking
        passages by the likelihood of the question they would make, ``retrieval.rerank``)."""
        import torch

        enc = self.batch_ids(chats)
        cont = self.tokenizer(continuation, add_special_tokens=False, return_tensors="pt").input_ids.to(enc.input_ids.device)
        ids = torch.cat([enc.input_ids, cont.expand(len(chats), -1)], dim=1)
        mask = torch.cat([enc.attention_mask, torch.ones_like(cont).expand(len(chats), -1)], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: each row counts from its first token
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                logits_to_keep=cont.shape[1] + 1).logits[:, :-1]
            scores = []
            for row in logits:  # row by row in fp32: a 500-token question after 10 passages is ~2 GB of them at once
                row = row.float()
                scores.append(float((row.gather(1, cont[0][:, None])[:, 0] - row.logsumexp(-1)).mean()))
        return scores

    def generate(self, messages: Messages, max_new_tokens: int | None = None) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        if self.beams > 1:  # transformers cannot stream a beam search: the reply comes whole
            return (text for text in self.generate_batch([messages], max_new_tokens) if text)
        ids = self.prompt_ids(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        greedy = self.config.temperature == 0
        kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                      max_new_tokens=max_new_tokens or self.config.max_new_tokens, do_sample=not greedy,
                      temperature=None if greedy else self.config.temperature, top_p=None, top_k=None,
                      pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
                      else self.tokenizer.eos_token_id)
        if greedy and self.prompt_lookup:
            # answers copy spans of the passages: drafts taken from the prompt are verified in one
            # pass; bf16 decode on 2 cores went from 8.9 to 20.2 tokens/s (bench/answer.py)
            kwargs["prompt_lookup_num_tokens"] = self.prompt_lookup
        # read now, in the caller's thread (the switches of numbers_from are per thread), not once streaming
        kwargs["logits_processor"] = self._processors(ids.shape[1], greedy=greedy)
        numbers = _numbers(kwargs["logits_processor"])
        # the call's own cuts, filled as the model writes: read by whoever iterates the reply, in whatever thread
        # (gradio steps a streaming handler in worker threads) and whatever else the generator serves meanwhile
        cuts = [numbers.cuts.setdefault(0, [])] if numbers else [[]]
        return StreamedReply(self._stream(kwargs, streamer, ids.shape[1]), cuts)

    def _stream(self, kwargs: dict, streamer, prompt_len: int) -> Iterator[str]:
        import torch

        cancel = threading.Event()  # set when the reader stops reading: the model stops too
        loop = _LoopStop(prompt_len, decode=self.tokenizer.decode, ends=self._ends())
        kwargs["stopping_criteria"] = [loop, lambda input_ids, scores, **kw: cancel.is_set()]
        failure: list[BaseException] = []

        def run():
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced in the caller's thread below
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield from (piece for piece in streamer if piece)
        finally:  # also when the reader closes the stream early
            cancel.set()
            thread.join()
            self.looped = [bool(loop.fired)]
        if failure:
            raise GeneratorError(f"model {self.name}: generation failed ({failure[0]})") from failure[0]


class StreamedReply:
    """A streamed reply's pieces, with ``number_cuts``: where its figures were refused (``_NumbersFrom``), filled
    as it streams."""

    def __init__(self, pieces: Iterator[str], number_cuts: list[list[str]]):
        self._pieces, self.number_cuts = pieces, number_cuts

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        self._pieces.close()


class _LoopStop:
    """Stop a reply that loops: its last ``window`` tokens already occurred earlier in it, or
    its last ``lines`` lines cycle through a few shapes once digits are masked ("[12]", "[13]", ...;
    "5. PDF files (.pdf)", "6. HTML files (.html)", "7. PDF files (.pdf)", ...).

    Small models fall into loops; penalties against repetition would also penalise copying the
    sources, which is what a grounded answer should do, so a loop is cut instead.
    """

    def __init__(self, prompt_len: int, window: int = 16, decode=None, lines: int = 6, ends: set[int] = frozenset()):
        self.prompt_len, self.window, self.decode, self.lines = prompt_len, window, decode, lines
        self.ends = ends  # tokens that end a reply: a row holding one is finished (and padded), not looping
        self.fired: set[int] = set()  # rows of the batch this stopped

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        flags = [self.looped(row[self.prompt_len:].tolist()) for row in input_ids]
        self.fired.update(i for i, f in enumerate(flags) if f)
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

    def looped(self, out: list[int]) -> bool:
        """Whether reply tokens ``out`` end in a loop (a reply holding an end token is finished, not looping)."""
        return not self.ends.intersection(out) and self._looped(out)

    def _looped(self, out: list[int]) -> bool:
        n = self.window
        if len(out) >= 2 * n:
            tail, body = out[-n:], out[:-n]
            if any(body[i:i + n] == tail for i in range(len(body) - n + 1)):
                return True
        return self.decode is not None and self._same_shape_lines(self.decode(out[-24 * self.lines:]))

    def _same_shape_lines(self, text: str) -> bool:
        complete = text.split("\n")[:-1]  # the last line may still be growing
        shapes = [re.sub(r"\d+", "0", line.strip()) for line in complete[-self.lines:]]
        # one shape, or a cycle of a few ("PDF files", "HTML files", "PDF files", ...): each line of
        # the window then repeats at least three times, which no real list does
        return len(shapes) == self.lines and len(set(shapes)) <= max(1, self.lines // 3) \
            and min(map(len, shapes)) >= 3


class _ReplyRepeatPenalty:
    """A soft ban on phrases the reply already said: a token that would complete an ``n``-gram the reply
    already holds loses ``penalty`` from its logit per earlier occurrence, times ``growth`` for each token
    by which the repeat is longer than ``n`` (as the DRY sampler does: a long passage copied again costs
    more than a short phrase). The prompt's n-grams are not counted, so quoting the sources stays free;
    words said again in new phrases stay free too.

    transformers' own processors do not fit: ``no_repeat_ngram_size`` bans outright and counts the prompt
    (a hard 4-gram ban on the reply alone cost F1, README "Fine-tuning"), and ``repetition_penalty`` (even
    with ``prompt_ignore_length``) taxes single tokens, every "the" an answer needs again (red-teaming
    F1 -0.020 at a comparable strength)."""

    def __init__(self, prompt_len: int, penalty: float, n: int = 3, growth: float = 1.0, longest: int = 32):
        self.prompt_len, self.penalty, self.n, self.growth, self.longest = prompt_len, penalty, n, growth, longest

    def __call__(self, input_ids, scores):
        import torch

        reply, k = input_ids[:, self.prompt_len:], self.n - 1
        if reply.shape[1] <= k:
            return scores
        # run[:, p]: the reply's last j tokens equal the j tokens before position p, for j = 1, 2, ...;
        # length[:, p] is the longest such j (up to ``longest``): how much of an earlier phrase token p would repeat
        before, last = reply[:, :-1], reply.shape[1] - 1
        run = torch.ones_like(before, dtype=torch.bool)
        length = torch.zeros(before.shape, dtype=scores.dtype, device=reply.device)
        for j in range(min(self.longest, last)):
            run[:, :j] = False  # no j-th token before these positions
            run[:, j:] &= before[:, :last - j] == reply[:, last - j:last - j + 1]
            if not run.any():
                break
            length += run
        # growth > 1 (DRY-style) taxes a longer repeat harder: 3 tokens at ``penalty``, each token more x growth
        weight = (length >= k) * self.penalty * self.growth ** (length - k)
        # the token that followed each earlier occurrence of the context, once per occurrence
        return scores.scatter_add(1, reply[:, 1:], -weight)


class _NoEndAfterOpening:
    """The reply may not end right after a colon: an opening with nothing after it says nothing. With
    markers held back, the shipped adapter ended 7 of 71 ARAGOG dev replies at "The answer to this
    question is:" (where it had written "[1]"); made to go on, it says the answer ("… improving over
    the strongest zero-shot baseline by over 0.1 AUROC")."""

    def __init__(self, prompt_len: int, colon_ids: list[int], end_ids: list[int], device="cpu"):
        import torch

        self.prompt_len = prompt_len
        self.colon_ids, self.end_ids = torch.tensor(colon_ids, device=device), torch.tensor(end_ids, device=device)

    def __call__(self, input_ids, scores):
        import torch

        if input_ids.shape[1] <= self.prompt_len:
            return scores
        rows = torch.isin(input_ids[:, -1], self.colon_ids).nonzero()  # (n, 1) against the ends (m,):
        scores[rows, self.end_ids] = -float("inf")  # every end token of each such row
        return scores


_TRAILING_NUMBER = re.compile(rf"({NUMBER.pattern})([.,]?)$")


class _NumbersFrom:
    """A reply may state only numbers its chat's text holds (the sources it was given and the question): a
    digit is generated only while the number it belongs to is still the beginning of one of the text's
    numbers, and the number may end only where one of them ends. Given sources, the 135M model wrote figures
    they never gave ("approximately 1.2 million tweets" of a paper counting 522,967; "Hoffmann et al. (2222)")
    in 10 of 209 dev answers; constrained, it writes one the sources give or none (README, "Answers").

    Where the model is refused what it wanted, what it then writes is no longer its own figure: about to begin
    one the sources lack ("approximately " + 1.2 million), to end one they lack ("β3" + ":", made "β33"), to
    go on with a digit ("approximately 1." of 1.2), or with another digit (Hoffmann et al. "(2" + "2" made
    "(2019)", a year the sources hold, where the model wrote 2222 and the paper says 2022). The reply so far
    is kept in ``cuts`` (per row), so the reply can end before that sentence
    (``ragqa.reply.before_refused_figure``).

    A list's numbers are free ("\n2. **Data size**", "are: 1. PDF 2. …": ``ragqa.text.list_number``), and so are a
    source marker's ("[2]", for models let write them: ``generator.reply_markers``). Digits are
    single tokens in SmolLM2's, Qwen2.5's and Gemma's vocabularies; a token holding several digits (Llama 3)
    is checked whole, as the text it would add.

    ``greedy``: only the best token is kept, so a row is checked only where that token holds a digit or the
    reply's last tokens do (a number may be ending); elsewhere nothing it would refuse could be chosen. The
    replies are the same; the processor's time in batched decoding fell from 2% to 0.5% (16 ARAGOG replies: 1.1
    → 0.25 of 55 s; decoding each row's tail at every step was its cost)."""

    def __init__(self, texts: list[str], prompt_len: int, decode, digit_tokens: list[tuple[int, str]], other_ids,
                 dot_id, comma_id, paren_id=None, window: int = 16, greedy: bool = False):
        self.prompt_len, self.decode, self.window, self.greedy = prompt_len, decode, window, greedy
        self.digit_tokens, self.other_ids = digit_tokens, other_ids  # tokens with digits; the ids of the rest
        self.dot_id, self.comma_id, self.paren_id = dot_id, comma_id, paren_id  # ".", ",", ")" alone
        self.numbers = [self._read(text) for text in texts]  # per chat: (whole numbers, their beginnings)
        self.digit_ids = {i for i, _ in digit_tokens}
        self._has_digit = None  # per vocabulary id: the token holds a digit (built at the first call, on its device)
        self.cuts: dict[int, list[str]] = {}  # per row: the reply so far wherever a sentence's figure was lost

    def __call__(self, input_ids, scores):
        import torch

        per_chat = max(1, len(input_ids) // len(self.numbers))  # a chat's samples or beams are consecutive rows
        for row in self._rows_to_check(input_ids, scores):
            ids = input_ids[row]
            whole, starts = self.numbers[min(row // per_chat, len(self.numbers) - 1)]
            reply = ids[self.prompt_len:]
            # "…" stands for what came before the window: the tail opens the reply only when it is all of it
            tail = self.decode(reply[-self.window:], skip_special_tokens=True)
            tail = tail if len(reply) <= self.window else "…" + tail
            keep = scores[row].clone()
            banned = [i for i, text in self.digit_tokens if not self._fits(tail + text, len(tail), whole, starts)]
            scores[row, banned] = -float("inf")
            if (open_number := self._open(tail)) and open_number[0] not in whole:
                key, sep, listed = open_number  # a number not yet one of theirs: only digits (or a separator) go on
                scores[row, self.other_ids] = -float("inf")
                if not sep:  # "14" of 14,100 goes on with ",", "1" of 1.5 with "."; "2" of a list with "." or ")"
                    for token, ok in ((self.dot_id, listed or key + "." in starts), (self.comma_id, key + "," in starts),
                                      (self.paren_id, listed)):
                        if token is not None and ok:
                            scores[row, token] = keep[token]
            if torch.isinf(scores[row]).all():  # never a dead end (a number begun outside the window read)
                scores[row] = keep
            if not _made_up(keep):
                self._note_cut(row, ids, int(keep.argmax()), int(scores[row].argmax()))
        return scores

    def _rows_to_check(self, input_ids, scores) -> list[int]:
        """Every row; under ``greedy`` those whose best token or last 3 reply tokens hold a digit (a separator
        token after a number's digits, "14" + ",", is one token from them)."""
        import torch

        if not self.greedy:
            return range(len(input_ids))
        if self._has_digit is None or len(self._has_digit) != scores.shape[-1]:
            self._has_digit = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
            self._has_digit[sorted(i for i in self.digit_ids if i < scores.shape[-1])] = True
        recent = input_ids[:, max(self.prompt_len, input_ids.shape[1] - 3):]
        near = self._has_digit[scores.argmax(-1)] | self._has_digit[recent].any(-1)
        return near.nonzero()[:, 0].tolist()

    def _note_cut(self, row: int, ids, wanted: int, chosen: int) -> None:
        """Keep the reply so far when the token the model wanted is refused (the greedy choice; sampling is
        read the same way)."""
        if wanted != chosen:
            self.cuts.setdefault(row, []).append(self.decode(ids[self.prompt_len:], skip_special_tokens=True))

    def cuts_per_reply(self, rows: int, replies: int) -> list[list[str]]:
        """``cuts`` per reply: per row, or for a beam search (rows = replies x beams) each chat's rows together."""
        per = max(1, rows // max(replies, 1))
        return [[c for row in range(i * per, (i + 1) * per) for c in self.cuts.get(row, [])] for i in range(replies)]

    @staticmethod
    def _read(text: str) -> tuple[set[str], set[str]]:
        """The text's numbers (``ragqa.text.figures``: "14,100" may be said "14100", not the other way round)
        and every beginning of them."""
        whole = figures(text)
        return whole, {n[:i] for n in whole for i in range(1, len(n) + 1)}

    def _open(self, tail: str) -> tuple[str, str, bool] | None:
        """The number the reply is in the middle of, as (key, trailing separator, whether it may be numbering a
        list), unless it is a list's number already ("2." after a colon) or a source marker's ("[2")."""
        m = _TRAILING_NUMBER.search(tail)
        if not m or names_number(tail, m.start(1), m.end(1)) or marker_number(tail, m.start(1), m.end(1), True):
            return None
        return m.group(1), m.group(2), list_number(tail, m.start(1), m.end(1), writing=True)

    def _fits(self, text: str, new: int, whole: set[str], starts: set[str]) -> bool:
        """Whether each number the added text (from ``new`` on) writes into is the prompt's, or begins one
        of them while still being written."""
        for m in NUMBER.finditer(text):
            if m.end() <= new or free_number(text, m.start(), m.end(), writing=True):
                continue
            key, rest = m.group(), text[m.end():]
            if not rest:
                ok = key in starts
            elif rest in (".", ","):  # a decimal point or thousands separator, or the sentence's end
                ok = key in whole or key + rest in starts
            else:
                ok = key in whole
            if not ok:
                return False
        return True


def _made_up(scores) -> bool:
    """Whether a row of logits is transformers' made-up one, not the model's: prompt lookup (the chat's
    streaming on bf16 CPUs) asks the processors which tokens of a draft they would ban by passing logits of all
    ones, so the "wanted" token there is merely the first id (end of text). Noted as refusals, those asks cut
    right replies: "What is the size of the new dataset?" lost "approximately 14,100 tweets." when a draft
    (the paper's "1,075") was checked and the model's own reply was the paper's figure. Real logits never put
    half of their finite values at their maximum. (Finite: transformers passes the same tensor for each drafted
    token, so a processor that bans in place leaves it mostly -inf for the next.)"""
    import torch

    return 2 * int((scores == scores.max()).sum()) > int(torch.isfinite(scores).sum())


def _numbers(processors) -> _NumbersFrom | None:
    return next((p for p in processors if isinstance(p, _NumbersFrom)), None)


def _number_cuts(processors, rows: int, replies: int) -> list[list[str]]:
    numbers = _numbers(processors)
    return numbers.cuts_per_reply(rows, replies) if numbers else [[] for _ in range(replies)]


class _DoneStop:
    """Stop each row of a batch once its caller says the reply so far is complete (``done[chat](text)``),
    as streaming stops when its reader stops reading. Each chat's rows are consecutive and as many as the
    batch has per chat: its samples, or a beam search's candidates (transformers keeps 2 or more per beam,
    more for a model with several end tokens). ``remember``: a stopped row stays stopped (greedy and sampled
    rows keep their place; a beam search's rows are new candidates at every step, each asked afresh)."""

    def __init__(self, prompt_len: int, decode, done: list, remember: bool = True):
        self.prompt_len, self.decode, self.done = prompt_len, decode, done
        self.remember, self.stopped = remember, set()

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        per_chat = len(input_ids) // len(self.done)
        flags = [i in self.stopped or self.done[i // per_chat](
            self.decode(row[self.prompt_len:], skip_special_tokens=True)) for i, row in enumerate(input_ids)]
        if self.remember:
            self.stopped.update(i for i, f in enumerate(flags) if f)
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)


def stop_ids(tokenizer, model=None) -> set[int]:
    """Token ids that end a reply: the tokenizer's EOS and the model's generation EOS (a list for
    chat models whose turn end differs from EOS). Generation stops on them; training learns them."""
    ids = {tokenizer.eos_token_id}
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(eos) if isinstance(eos, (list, tuple)) else {eos}
    return {i for i in ids if i is not None}


def token_ids(tokenizer, wanted) -> list[int]:
    """Ids of the vocabulary's tokens whose text, as decoded (byte-level "Ġ[" is " [", SentencePiece
    "▁[" too), passes ``wanted``: ~0.1 s over SmolLM2's 49,152 tokens, once per generator."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return [i for i, token in enumerate(vocab) if token and wanted(tokenizer.convert_tokens_to_string([token]))]


def plain_prompt(messages: Messages) -> str:
    """Chat turns as text for models without a chat template."""
    parts = []
    for m in messages:
        if m["role"] == "system":
            parts.append(m["content"])
        elif m["role"] == "user":
            parts.append(f"Question: {m['content']}")
        else:
            parts.append(f"Answer: {m['content']}")
    return "\n\n".join(parts) + "\n\nAnswer:"


def _precision(precision: str, device: str) -> str:
    if precision == "auto":
        return "bf16" if device == "cuda" or cpu_has_bf16() else "fp32"
    if precision == "nf4" and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("precision nf4 needs bitsandbytes — pip install bitsandbytes (or: pip install 'ragqa[train]')")
    if precision == "fp16" and device == "cpu":
        raise ConfigError("precision fp16 is for CUDA; on CPU use fp32, bf16, int8 or nf4")
    if precision == "int8" and device == "cuda":
        raise ConfigError("precision int8 (torch dynamic quantization) is CPU-only; on CUDA use nf4, bf16 or fp16")
    return precision


def _load(path: str, name: str, precision: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict = {"dtype": {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)}
    if precision == "nf4":
        from transformers import BitsAndBytesConfig

        if device == "cuda":  # the unquantised weights (embeddings, norms, lm_head) in the bf16 compute dtype
            kwargs["dtype"] = torch.bfloat16

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,  # QLoRA's recipe
            bnb_4bit_compute_dtype=torch.bfloat16)
    if device == "cuda":
        kwargs["device_map"] = "auto"
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"model {name}: cannot load ({_first_line(exc)}) — give a local folder, a .gguf file, "
            "or a Hugging Face id this machine can download"
        ) from None
    return tokenizer, model


def _with_adapter(model, adapter: str, base: str, trainable: bool = False):
    """Attach a PEFT adapter, refusing one trained on another base model."""
    from peft import PeftModel

    cfg = Path(adapter) / "adapter_config.json"
    if not cfg.is_file():
        raise ConfigError(f"adapter {adapter}: no adapter_config.json — give a `ragqa train` run folder or PEFT adapter")
    trained_on = json.loads(cfg.read_text()).get("base_model_name_or_path") or "unknown"
    try:
        return PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"adapter {adapter}: does not fit model {base} (trained on {trained_on}: {_first_line(exc)}) "
            "— pass the adapter's own base model with --model"
        ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
