import threading

import pytest

from ragqa.config import GeneratorConfig
from ragqa.errors import ConfigError, GeneratorError
from fakes import FakeOpenAI
from ragqa.generators import OpenAIGenerator, TransformersGenerator, load_generator, plain_prompt

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is BERT?"}]


def test_openai_compatible_server_streams(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    gen = load_generator(GeneratorConfig(model="served-model", base_url=server, max_new_tokens=12))
    assert isinstance(gen, OpenAIGenerator)
    assert list(gen.generate(MESSAGES)) == ["BERT ", "is an ", "encoder [1]."]
    path, headers, body = FakeOpenAI.requests[-1]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-local"
    assert body["messages"] == MESSAGES and body["max_tokens"] == 12 and body["stream"] is True


def test_openai_errors_are_one_line(server):
    with pytest.raises(GeneratorError, match="HTTP 404"):
        list(OpenAIGenerator(GeneratorConfig(model="other", base_url=server)).generate(MESSAGES))
    with pytest.raises(GeneratorError, match="unreachable .* fix --base-url"):
        list(OpenAIGenerator(GeneratorConfig(model="m", base_url="http://127.0.0.1:9/v1")).generate(MESSAGES))


def test_config_refuses_bad_values():
    with pytest.raises(ConfigError, match="precision"):
        GeneratorConfig(precision="fp8")
    with pytest.raises(ConfigError, match="base_url"):
        GeneratorConfig(base_url="localhost:8000")


def test_plain_prompt_for_models_without_a_chat_template():
    history = MESSAGES + [{"role": "assistant", "content": "An encoder."}, {"role": "user", "content": "Who made it?"}]
    assert plain_prompt(history) == ("Be brief.\n\nQuestion: What is BERT?\n\nAnswer: An encoder.\n\n"
                                     "Question: Who made it?\n\nAnswer:")


# --- transformers backend on tiny in-process models (peft's own tests do the same) ---

def tiny_model(folder, hidden=16, extra: tuple[str, ...] = ()):
    """A 2-layer Llama with a word-level tokenizer, saved like any Hugging Face model (``extra``: words
    added after the usual ones, which keep their ids and the model its weights' order)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "<unk>"] + "what is bert an encoder be brief question answer : ? .".split() + list(extra)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    config = LlamaConfig(vocab_size=len(words), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=128, eos_token_id=1, pad_token_id=0)
    torch.manual_seed(0)  # the same random weights on every run, so tests that compare replies are stable
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return str(folder)


def lora_adapter(model_path, folder, trained: bool = False):
    """A LoRA adapter for ``model_path``; ``trained``: random non-zero weights (peft starts B at zero,
    so an untrained adapter changes nothing)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_path),
                           LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=not trained))
    model.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_transformers_backend_streams_from_a_local_folder(tmp_path, precision):
    path = tiny_model(tmp_path / "tiny")
    gen = TransformersGenerator(GeneratorConfig(model=path, max_new_tokens=5, precision=precision))
    pieces = list(gen.generate(MESSAGES))
    assert gen.count_tokens("what is bert ?") == 4
    assert len("".join(pieces).split()) <= 5  # greedy output of random weights, but bounded and streamed
    assert gen.prompt_ids(MESSAGES).shape[1] == len(gen.tokenizer(plain_prompt(MESSAGES)).input_ids)


def test_adapter_is_loaded_and_a_foreign_adapter_refused(tmp_path):
    base = tiny_model(tmp_path / "base")
    adapter = lora_adapter(base, tmp_path / "adapter")
    gen = TransformersGenerator(GeneratorConfig(model=base, adapter=adapter, max_new_tokens=3))
    assert gen.name.endswith(adapter) and type(gen.model).__name__.startswith("Peft")
    other = tiny_model(tmp_path / "other", hidden=32)
    with pytest.raises(ConfigError, match="does not fit model .*other"):
        TransformersGenerator(GeneratorConfig(model=other, adapter=adapter))
    with pytest.raises(ConfigError, match="no adapter_config.json"):
        TransformersGenerator(GeneratorConfig(model=base, adapter=str(tmp_path)))


def test_untuned_switches_the_adapter_off_in_place(tmp_path):
    import torch

    base = tiny_model(tmp_path / "base")
    torch.manual_seed(1)
    adapter = lora_adapter(base, tmp_path / "adapter", trained=True)
    plain = TransformersGenerator(GeneratorConfig(model=base, precision="fp32"))
    tuned = TransformersGenerator(GeneratorConfig(model=base, adapter=adapter, precision="fp32"))
    assert tuned.tuned and not plain.tuned
    ids = plain.prompt_ids(MESSAGES)
    with torch.inference_mode():
        want = plain.model(input_ids=ids).logits
        assert not torch.allclose(tuned.model(input_ids=ids).logits, want)  # the adapter changes the model
        with tuned.untuned():
            assert torch.allclose(tuned.model(input_ids=ids).logits, want, atol=1e-6)
        assert not torch.allclose(tuned.model(input_ids=ids).logits, want)  # and is back on afterwards
        with plain.untuned():  # a model without adapter: nothing to switch off
            assert torch.allclose(plain.model(input_ids=ids).logits, want)


def test_unknown_model_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="no-such-model: not a local folder and not in the Hugging Face cache"):
        TransformersGenerator(GeneratorConfig(model="no-such-org/no-such-model"))
    with pytest.raises(ConfigError, match="GGUF file not found"):
        TransformersGenerator(GeneratorConfig(model=str(tmp_path / "missing.gguf")))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot load"):
        TransformersGenerator(GeneratorConfig(model=str(tmp_path / "broken")))


def test_loop_stop_cuts_a_repeating_answer_only():
    import torch

    from ragqa.generators import _LoopStop

    stop = _LoopStop(prompt_len=3, window=4)
    prompt = [9, 9, 9]
    assert not stop(torch.tensor([prompt + [1, 2, 3, 4, 5, 6, 7, 8]]), None).item()
    assert stop(torch.tensor([prompt + [1, 2, 3, 4, 5, 1, 2, 3, 4]]), None).item()
    assert stop.fired == {0}  # what the generator counts as a loop stop (reported by evaluation)
    # a finished row of a batch is padded with its end token: a run of pads is not a loop
    batch = _LoopStop(prompt_len=3, window=4, ends={0})
    flags = batch(torch.tensor([prompt + [5, 6, 0, 0, 0, 0, 0, 0, 0, 0], prompt + [1, 2, 3, 4, 5, 1, 2, 3, 4, 0]]), None)
    assert flags.tolist() == [False, False] and batch.fired == set()
    # copying the prompt (quoting a source) is not a loop
    quote = _LoopStop(prompt_len=4, window=4)
    assert not quote(torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8]]), None).item()


def test_batch_generation_matches_one_by_one(tmp_path):
    path = tiny_model(tmp_path / "tiny")
    gen = TransformersGenerator(GeneratorConfig(model=path, max_new_tokens=6, precision="fp32", prompt_lookup=0))
    chats = [MESSAGES, [{"role": "user", "content": "be brief : what is an encoder ?"}]]
    assert gen.generate_batch(chats) == ["".join(gen.generate(c)) for c in chats]


def test_a_batch_row_stops_where_its_caller_says_the_reply_is_complete(tmp_path):
    path = tiny_model(tmp_path / "tiny")
    gen = TransformersGenerator(GeneratorConfig(model=path, max_new_tokens=6, precision="fp32", prompt_lookup=0))
    chats = [MESSAGES, [{"role": "user", "content": "be brief : what is an encoder ?"}]]
    full = gen.generate_batch(chats)
    seen = []
    cut = gen.generate_batch(chats, done=[lambda text: seen.append(text) or len(text) > 0, lambda text: False])
    assert cut[1] == full[1]  # the other row goes on as before
    assert cut[0] == seen[0] and full[0].startswith(cut[0]) and len(cut[0]) < len(full[0])


def test_the_generator_says_which_replies_of_a_batch_the_loop_stop_cut(tmp_path):
    path = tiny_model(tmp_path / "tiny")
    # without the repeat penalty, which keeps the tiny model from looping
    gen = TransformersGenerator(GeneratorConfig(model=path, max_new_tokens=48, precision="fp32", prompt_lookup=0,
                                                reply_repeat_penalty=0))
    chats = [MESSAGES, [{"role": "user", "content": "be brief : what is an encoder ?"}]]
    replies = gen.generate_batch(chats)
    assert len(gen.looped) == len(replies) == 2
    assert any(gen.looped)  # a random tiny model repeats itself within 48 greedy tokens
    # a row the loop stop cut ended there, before the token limit
    assert all(gen.count_tokens(r) < 48 for r, cut in zip(replies, gen.looped) if cut)
    "".join(gen.generate(MESSAGES))
    assert len(gen.looped) == 1


def test_sampled_batches_give_that_many_replies_per_chat_grouped_by_chat(tmp_path):
    import torch

    path = tiny_model(tmp_path / "tiny")
    gen = TransformersGenerator(GeneratorConfig(model=path, max_new_tokens=8, precision="fp32", prompt_lookup=0))
    chats = [MESSAGES, [{"role": "user", "content": "be brief : what is an encoder ?"}]]
    torch.manual_seed(0)
    hot = gen.generate_batch(chats, samples=3, temperature=5.0)  # near uniform: the samples differ
    assert len(hot) == 6 and len(set(hot)) > 2
    greedy = gen.generate_batch(chats)
    assert greedy[0] != greedy[1] and gen.generate_batch(chats) == greedy  # greedy stays deterministic
    # nearly cold sampling says the greedy reply: three of the first chat's, then three of the second's
    assert gen.generate_batch(chats, samples=3, temperature=1e-4) == [greedy[0]] * 3 + [greedy[1]] * 3


def test_plain_prompt_batches_keep_the_bos_token(tmp_path):
    from tokenizers import processors
    from transformers import AutoTokenizer

    path = tiny_model(tmp_path / "tiny")
    tok = AutoTokenizer.from_pretrained(path)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<unk> $A", special_tokens=[("<unk>", tok.unk_token_id)])  # a BOS, as base models have
    tok.save_pretrained(path)
    gen = TransformersGenerator(GeneratorConfig(model=path, max_new_tokens=3, precision="fp32", prompt_lookup=0))
    assert gen.prompt_ids(MESSAGES)[0, 0].item() == tok.unk_token_id
    chats = [MESSAGES, MESSAGES[1:]]
    enc = gen.batch_ids(chats)
    for row, chat in enumerate(chats):  # each row, padding aside, is the chat encoded alone
        ids = enc.input_ids[row][enc.attention_mask[row].bool()]
        assert ids.tolist() == gen.prompt_ids(chat)[0].tolist()


def test_loop_stop_cuts_lines_repeating_with_counting_numbers():
    from ragqa.generators import _LoopStop

    stop = _LoopStop(prompt_len=0, decode=lambda ids: "".join(chr(i) for i in ids), lines=4)
    as_ids = lambda text: [ord(ch) for ch in text]  # noqa: E731
    assert stop._looped(as_ids("Answer:\n[12]\n[13]\n[14]\n[15]\n[1"))
    assert stop._looped(as_ids("5. PDF files.\n6. PDF files.\n7. PDF files.\n8. PDF files.\n"))
    assert not stop._looped(as_ids("1. PDF\n2. Markdown\n3. HTML\n4. text\n"))  # a real list
    six = _LoopStop(prompt_len=0, decode=lambda ids: "".join(chr(i) for i in ids), lines=6)
    assert six._looped(as_ids("".join(f"{n}. {'PDF' if n % 2 else 'HTML'} files\n" for n in range(5, 11))))
    assert not six._looped(as_ids("1. PDF\n2. Markdown\n3. HTML\n4. text\n5. reST\n6. PDF again\n"))
    assert not stop._looped(as_ids("[1]\n[2]\n[3]\n"))  # too short to call a loop


def test_unknown_model_id_offline_is_one_line_at_once():
    from ragqa.errors import ConfigError
    from ragqa.generators import resolve_model

    with pytest.raises(ConfigError, match="model nobody/no-such-model: not a local folder and not in the Hugging Face cache"):
        resolve_model("nobody/no-such-model")  # checked before transformers tries (and retries) the hub


class _ByteTokenizer:
    """One id per byte (0 is the unknown token); ``lose_spaces``: spaces become the unknown token, as
    transformers 5.3 read SmolLM2's GGUF tokenizer."""

    unk_token_id = 0

    def __init__(self, lose_spaces: bool = False):
        self.lose_spaces = lose_spaces

    def __call__(self, text, add_special_tokens=False):
        from types import SimpleNamespace

        return SimpleNamespace(input_ids=[0 if self.lose_spaces and b == 32 else b for b in text.encode()])

    def decode(self, ids):
        return bytes(i for i in ids if i).decode()


def test_a_gguf_tokenizer_that_loses_text_is_refused_before_conversion():
    from ragqa.generators._gguf import check_tokenizer

    check_tokenizer(_ByteTokenizer(), "model.gguf")  # text survives: accepted
    with pytest.raises(ConfigError, match=r"model.gguf: transformers .* reads this GGUF's tokenizer wrongly.*pip install -U"):
        check_tokenizer(_ByteTokenizer(lose_spaces=True), "model.gguf")


def test_loglik_is_the_mean_log_probability_of_the_continuation(tmp_path):
    """Multiple-choice scoring asks the model for the continuation's logits only; the value must be what
    the whole sequence's logits give."""
    import torch

    gen = TransformersGenerator(GeneratorConfig(model=tiny_model(tmp_path / "tiny"), precision="fp32"))
    prompt = gen.prompt_ids(MESSAGES)
    cont = gen.tokenizer("an encoder .", add_special_tokens=False, return_tensors="pt").input_ids
    ids = torch.cat([prompt, cont], dim=1)
    with torch.no_grad():
        logp = torch.log_softmax(gen.model(input_ids=ids).logits[0].float(), -1)
    n = prompt.shape[1]
    expected = float(torch.stack([logp[n - 1 + i, t] for i, t in enumerate(cont[0])]).mean())
    assert gen.loglik(MESSAGES, "an encoder .") == pytest.approx(expected, abs=1e-5)
    assert gen.loglik(MESSAGES, "an encoder .") != pytest.approx(gen.loglik(MESSAGES, "what is bert ?"), abs=1e-3)


def test_loglik_batch_gives_each_chat_what_loglik_gives_it_alone(tmp_path):
    """Reranking scores passages of different lengths in one left-padded batch: padding must not
    change any row's value."""
    gen = TransformersGenerator(GeneratorConfig(model=tiny_model(tmp_path / "tiny"), precision="fp32"))
    chats = [[{"role": "user", "content": text}] for text in
             ("bert is an encoder .", "what is bert ? bert is an encoder trained on masked words .", "gpt")]
    alone = [gen.loglik(chat, "an encoder .") for chat in chats]
    assert gen.loglik_batch(chats, "an encoder .") == pytest.approx(alone, abs=1e-4)
    assert len({round(v, 3) for v in alone}) == 3  # the chats do score differently


def test_the_reply_repeat_penalty_lowers_only_what_would_say_a_phrase_of_the_reply_again():
    import torch

    from ragqa.generators._transformers import _ReplyRepeatPenalty

    prompt = [7, 8, 9, 7, 8]  # the prompt's own phrases ("7 8 9") stay free to quote
    reply = [1, 2, 3, 4, 1, 2, 3, 5, 1, 2]  # "1 2 3" said twice, "1 2" begun a third time
    scores = torch.zeros(1, 12)
    out = _ReplyRepeatPenalty(len(prompt), penalty=3.0)(torch.tensor([prompt + reply]), scores.clone())
    assert out[0, 3] == -6.0  # a third "1 2 3": penalised once per earlier time
    assert (out[0, torch.arange(12) != 3] == 0).all()  # other continuations of "1 2", and 9 after "7 8", are free
    short = _ReplyRepeatPenalty(len(prompt), penalty=3.0)(torch.tensor([prompt + [1, 2]]), scores.clone())
    assert (short == 0).all()
    # rows of a batch are penalised each by its own reply
    pair = _ReplyRepeatPenalty(len(prompt), penalty=3.0)(torch.tensor([prompt + reply, prompt + [5] * 10]),
                                                         torch.zeros(2, 12))
    assert pair[0, 3] == -6.0 and pair[1, 5] == -24.0 and pair[1, 3] == 0


def test_a_longer_repeat_costs_more_with_growth():
    import torch

    from ragqa.generators._transformers import _ReplyRepeatPenalty

    prompt, scores = [7, 8, 9], torch.zeros(1, 12)
    phrase = _ReplyRepeatPenalty(3, penalty=3.0, growth=2.0)(torch.tensor([prompt + [1, 2, 4, 1, 2]]), scores.clone())
    assert phrase[0, 4] == -3.0  # "1 2 4" again: a 3-token repeat costs the penalty alone
    passage = [1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5]  # "1 2 3 4 5" said again, "6" would make it 6 tokens
    long = _ReplyRepeatPenalty(3, penalty=3.0, growth=2.0)(torch.tensor([prompt + passage]), scores.clone())
    flat = _ReplyRepeatPenalty(3, penalty=3.0)(torch.tensor([prompt + passage]), scores.clone())
    assert long[0, 6] == -3.0 * 2 ** 3 and flat[0, 6] == -3.0  # 6 tokens: 3 more than the 3-gram
    with pytest.raises(ConfigError, match="reply_repeat_growth"):
        GeneratorConfig(reply_repeat_growth=0.5)


def test_the_repeat_penalty_keeps_a_looping_model_out_of_the_loop_stop(tmp_path):
    path = tiny_model(tmp_path / "tiny")
    chats = [MESSAGES, [{"role": "user", "content": "be brief : what is an encoder ?"}]]
    free = TransformersGenerator(GeneratorConfig(model=path, max_new_tokens=48, precision="fp32", prompt_lookup=0,
                                                 reply_repeat_penalty=0))
    held = TransformersGenerator(GeneratorConfig(model=path, max_new_tokens=48, precision="fp32", prompt_lookup=0))
    free.generate_batch(chats), held.generate_batch(chats)
    assert sum(free.looped) > sum(held.looped)


def test_the_reply_holds_no_source_markers_unless_the_config_lets_it(tmp_path):
    import torch

    path = tiny_model(tmp_path / "tiny", extra=("[", "1", "]", "[[", "x["))
    held = TransformersGenerator(GeneratorConfig(model=path, precision="fp32", prompt_lookup=0))
    free = TransformersGenerator(GeneratorConfig(model=path, precision="fp32", prompt_lookup=0, reply_markers=True))
    vocab = held.tokenizer.get_vocab()
    assert held._bracket_ids == sorted(vocab[w] for w in ("[", "[[", "x["))  # "1" and "]" stay free
    ids = held.prompt_ids(MESSAGES)
    scores = torch.zeros(1, len(vocab))
    banned = held._processors(ids.shape[1])(ids, scores.clone())[0]
    allowed = free._processors(ids.shape[1])(ids, scores.clone())[0]
    assert torch.isinf(banned[held._bracket_ids]).all() and not torch.isinf(banned[vocab["1"]])
    assert not torch.isinf(allowed).any()


def test_a_reply_cannot_end_right_after_a_colon(tmp_path):
    import torch

    path = tiny_model(tmp_path / "tiny")
    gen = TransformersGenerator(GeneratorConfig(model=path, precision="fp32", prompt_lookup=0))
    vocab = gen.tokenizer.get_vocab()
    assert gen._colon_ids == [vocab[":"]]
    prompt = gen.prompt_ids(MESSAGES)
    opening = torch.cat([prompt, torch.tensor([[vocab["answer"], vocab[":"]]])], dim=1)  # "answer :"
    finished = torch.cat([prompt, torch.tensor([[vocab["answer"], vocab["."]]])], dim=1)
    rows = torch.cat([opening, finished])
    scores = gen._processors(prompt.shape[1])(rows, torch.zeros(2, len(vocab)))
    ends = sorted(gen._ends())
    assert torch.isinf(scores[0, ends]).all() and not torch.isinf(scores[0]).all()  # it goes on, with a word
    assert not torch.isinf(scores[1]).any()  # after a full stop it may end
    # the prompt itself ending on a colon ("Answer:") does not count: the reply has not begun
    plain = torch.cat([prompt[:, :-1], torch.tensor([[vocab[":"]]])], dim=1)
    assert not torch.isinf(gen._processors(plain.shape[1])(plain, torch.zeros(1, len(vocab)))).any()


def test_beam_search_replies_stop_where_the_caller_says_and_come_whole_when_streamed(tmp_path):
    path = tiny_model(tmp_path / "tiny")
    gen = TransformersGenerator(GeneratorConfig(model=path, max_new_tokens=6, precision="fp32", num_beams=3))
    chats = [MESSAGES, [{"role": "user", "content": "be brief : what is an encoder ?"}]]
    full = gen.generate_batch(chats)
    assert gen.beams == 3 and len(gen.looped) == 2
    assert max(len(r.split()) for r in full) > 2  # left alone, 6 random-weight tokens run past two words
    # a candidate whose reply is complete is a finished hypothesis: every reply stops at two words
    cut = gen.generate_batch(chats, done=[lambda text: len(text.split()) >= 2] * 2)
    assert all(1 <= len(r.split()) <= 2 for r in cut)
    # transformers cannot stream a beam search: the reply comes as one piece, the batch's reply
    assert list(gen.generate(chats[1])) == [full[1]]
    # a model with two end tokens (Qwen2.5's chat models) has transformers keep 3 candidates per beam, not 2
    gen.model.generation_config.eos_token_id = [1, 2]
    cut = gen.generate_batch(chats, done=[lambda text: len(text.split()) >= 2] * 2)
    assert all(1 <= len(r.split()) <= 2 for r in cut)
    # sampling ignores the beams
    assert TransformersGenerator(GeneratorConfig(model=path, temperature=0.7, num_beams=3)).beams == 1


def test_num_beams_must_be_at_least_one():
    with pytest.raises(ConfigError, match="num_beams"):
        GeneratorConfig(num_beams=0)


# --- numbers a reply may state (answer.numbers_from_sources) ---

CHARS = list("0123456789.,") + [" tweets", " ", "\n", " has", "<eos>", ":", "[", "]", "F", " Table"]


def numbers_from(texts, prompt=(16,)):
    """A ``_NumbersFrom`` over a character vocabulary (digits are single tokens, as in SmolLM2's)."""
    import torch
    from ragqa.generators._transformers import _NumbersFrom

    digits = [(i, c) for i, c in enumerate(CHARS) if c.isdigit()]
    others = torch.tensor([i for i, c in enumerate(CHARS) if not c.isdigit()])
    decode = lambda ids, skip_special_tokens=True: "".join(CHARS[i] for i in ids)  # noqa: E731
    return _NumbersFrom(texts, len(prompt), decode, digits, others, CHARS.index("."), CHARS.index(","))


def allowed_after(processor, reply: str, prompt=(16,)) -> set[str]:
    """The tokens ``processor`` leaves open after ``reply`` (written in CHARS tokens)."""
    import torch

    ids, rest = list(prompt), reply
    while rest:  # greedy longest-first split of the reply into CHARS
        token = max((c for c in CHARS if rest.startswith(c)), key=len)
        ids.append(CHARS.index(token))
        rest = rest[len(token):]
    scores = processor(torch.tensor([ids]), torch.zeros(1, len(CHARS)))[0]
    return {c for c, s in zip(CHARS, scores.tolist()) if s != float("-inf")}


def test_a_reply_from_sources_states_only_numbers_they_hold():
    p = numbers_from(["The dataset holds 14,100 tweets from 2019 and 1.5 hours of audio."])
    digits = set("0123456789")
    assert allowed_after(p, " has ") & digits == {"1", "2"}  # a number begins only as one of theirs begins
    assert allowed_after(p, " has 1") == {"4", "."}  # 14,100 or 1.5: no "1 tweets", no "13"
    assert allowed_after(p, " has 14") == {"1", ","}  # "14100" may drop the separator the sources wrote
    assert allowed_after(p, " has 14,1") == {"0"}
    assert " tweets" in allowed_after(p, " has 14,100") and not allowed_after(p, " has 14,100") & digits
    assert allowed_after(p, " has 1.") == {"5"}  # a decimal point goes on only into the sources' 1.5
    # a number the sources hold may end a sentence; "2019." then goes on as words, never "2019.5"
    assert {".", " tweets"} <= allowed_after(p, " has 2019") and not allowed_after(p, " has 2019.") & digits


def test_list_numbering_is_free_and_a_number_never_leaves_a_dead_end():
    p = numbers_from(["Only 42 here."])
    assert set("0123456789") <= allowed_after(p, " has\n")  # "\n3. ..." numbers a list
    assert "." in allowed_after(p, " has\n7") and " " not in allowed_after(p, " has\n7")  # "7 tweets" is a figure
    words = set(CHARS) - set("0123456789")  # after a list's "7." anything but a decimal ("7.5" is a figure)
    assert allowed_after(p, " has\n7.") == words
    assert allowed_after(p, "1.") == words  # a list opening the reply ("1. The approach …")
    assert allowed_after(p, " has: 1. 7 has. 2.") == words  # inline, after a colon or a sentence
    assert allowed_after(p, " has: 45") == {"."}  # a list's number, or nothing: not 45 tweets, nor 451
    assert allowed_after(p, " has ") & set("0123456789") == {"4"}
    # a number begun where the processor did not see it (longer than its window) keeps every token open
    assert len(allowed_after(p, " has 99")) == len(CHARS)


def test_a_source_markers_number_is_free_and_states_no_figure():
    from ragqa.text import stated_figures

    p = numbers_from(["Only 42 here."])
    assert set("0123456789") <= allowed_after(p, " has [")  # "[7]": a marker (generator.reply_markers), not a figure
    assert {"]", ","} <= allowed_after(p, " has [7") and {"]"} <= allowed_after(p, " has [7, 8")
    assert allowed_after(p, " has 4") == {"2"}  # outside a marker "4" begins a figure: only 42 goes on
    assert stated_figures("It has 42 rows [3] [1, 12].\x1b[2J") == {"42"}


def test_a_names_digits_are_neither_held_nor_stated_figures():
    """Digits glued to a letter name something (BIBREF1, FIGREF11, F1): the sources' tags hold no figure for the
    reply to state ("The number of annotators was 1."), and a reply naming F1 states none."""
    from ragqa.text import figures, stated_figures

    p = numbers_from(["Only 42 here, as BIBREF1 and FIGREF11 say."])
    assert allowed_after(p, " has ") & set("0123456789") == {"4"}  # not "1", not "11"
    assert set("0123456789") <= allowed_after(p, " hasF")  # "F1", "F7": a name, free
    assert figures("BIBREF1, FIGREF11, an F1 of 0.92 on 14,100 tweets; 有14100条") == {"0.92", "14,100", "14100"}
    assert stated_figures("BIBREF12 reports an F1 of 92.3 [2]") == {"92.3"}


def test_a_sources_list_numbering_holds_no_figure():
    """"We ensure quality by: 1) …" numbers a list, as a reply's "1." does: it let the model say "The number of
    annotators was 1." of a paper saying five."""
    from ragqa.text import figures

    assert figures("We ensure quality by: 1) experts only; 2) test questions, 300 of them.\n3. Results") == {"300"}
    p = numbers_from(["By: 1) experts; 2) checks. Only 42 here."])
    assert allowed_after(p, " has ") & set("0123456789") == {"4"}


def test_the_numbers_of_tables_sections_and_findings_are_names_not_figures():
    """"Finding 1.4" let a reply answer a question about ChatGPT's dialogues with "1.4."; a reply's "Table 7" states
    no figure either (it may be wrong, but it is no number the answer claims)."""
    from ragqa.text import figures, stated_figures

    assert figures("Finding 1.4: it scores 87% (Table 2, Section 3.1, p. 7; see Fig. 5 and Eq. 9).") == {"87"}
    assert stated_figures("As Table 2 and Section 4 show, it scores 87.") == {"87"}
    assert stated_figures("It uses, for example 5 models at level 3.") == {"5", "3"}  # quantities, not labels
    p = numbers_from(["Finding 1.4 says 42."])
    assert allowed_after(p, " has ") & set("0123456789") == {"4"}  # not "1" of 1.4
    assert set("0123456789") <= allowed_after(p, " has Table ")  # free: it names a table
    assert " " in allowed_after(p, " has Table 7")


def test_each_chat_of_a_batch_has_its_own_numbers():
    import torch

    p = numbers_from(["It took 7 days.", "It took 8 days."])
    rows = torch.tensor([[16, 15, 13], [16, 15, 13]])  # both replies so far: " has "
    scores = p(rows, torch.zeros(2, len(CHARS)))
    assert scores[0, CHARS.index("7")] == 0 and scores[0, CHARS.index("8")] == float("-inf")
    assert scores[1, CHARS.index("8")] == 0 and scores[1, CHARS.index("7")] == float("-inf")


def test_numbers_from_holds_for_calls_made_within_it_in_this_thread_only(tmp_path):
    from ragqa.generators._transformers import _NumbersFrom

    gen = TransformersGenerator(GeneratorConfig(model=tiny_model(tmp_path / "tiny"), precision="fp32"))
    kinds = lambda: [type(p) for p in gen._processors(4)]  # noqa: E731
    assert _NumbersFrom not in kinds()
    other = []
    with gen.numbers_from(["It took 7 days."]):
        assert _NumbersFrom in kinds()
        worker = threading.Thread(target=lambda: other.append(kinds()))
        worker.start()
        worker.join()
    assert _NumbersFrom not in other[0] and _NumbersFrom not in kinds()


def test_where_a_wanted_figure_is_refused_the_reply_so_far_is_kept_as_a_cut():
    import torch

    p = numbers_from(["It holds 14,100 tweets and 1 table."])
    prompt = [16]

    def step(reply_ids, wanted):
        scores = torch.zeros(1, len(CHARS))
        scores[0, CHARS.index(wanted)] = 5.0  # the model's choice
        return p(torch.tensor([prompt + reply_ids]), scores)

    has = [CHARS.index(" has"), CHARS.index(" ")]
    step(has, "9")  # "has 9…": no number of theirs begins so; whatever is written instead is not the model's figure
    step(has + [CHARS.index("1"), CHARS.index(".")], "2")  # "has 1." where it wanted 1.2: the sentence ends on a stub
    step(has + [CHARS.index("1")], "4")  # allowed: nothing refused
    step(has + [CHARS.index("1"), CHARS.index("4")], " tweets")  # "has 14 tweets": 14 is none of theirs, made 14…
    # 14,15… made 14,10…: a figure of theirs, but chosen by the refusal, not by the model
    step(has + [CHARS.index("1"), CHARS.index("4"), CHARS.index(","), CHARS.index("1")], "5")
    assert p.cuts_per_reply(1, 1) == [[" has ", " has 1.", " has 14", " has 14,1"]]
    assert p.cuts_per_reply(4, 2) == [[" has ", " has 1.", " has 14", " has 14,1"], []]  # beams go with their chat


def test_greedy_numbers_check_only_rows_that_could_change_and_choose_the_same():
    """Under greedy decoding the processor reads a row's tail only where the best token or the last tokens hold a
    digit; every step's choice and every recorded cut match the processor that reads all rows."""
    import random

    import torch

    texts = ["It holds 14,100 tweets, 1.5 hours and 2019 posts."]
    full, fast = numbers_from(texts), numbers_from(texts)
    fast.greedy = True
    reads = {id(full): 0, id(fast): 0}
    for p in (full, fast):
        def counted(ids, skip_special_tokens=True, p=p):
            reads[id(p)] += 1
            return "".join(CHARS[i] for i in ids)
        p.decode = counted
    words = [i for i, c in enumerate(CHARS) if not c[-1].isdigit()]
    rng = random.Random(0)
    for _ in range(300):  # replies of words with a digit here and there
        ids = [16] + [rng.randrange(len(CHARS)) if rng.random() < 0.2 else rng.choice(words)
                      for _ in range(rng.randrange(1, 8))]
        scores = torch.randn(1, len(CHARS))
        if rng.random() < 0.5:  # most steps the model wants a word
            scores[0, CHARS.index(rng.choice([" tweets", " has", "\n", ":"]))] = 9.0
        chosen = int(full(torch.tensor([ids]), scores.clone()).argmax())
        assert int(fast(torch.tensor([ids]), scores.clone()).argmax()) == chosen, ids
    assert fast.cuts == full.cuts and full.cuts
    assert 0 < reads[id(fast)] < 0.75 * reads[id(full)]  # rows far from any digit are not read


def test_a_draft_checked_with_made_up_logits_is_not_a_refusal():
    """Prompt lookup asks the processors about each drafted token with logits of all ones: the digits the
    sources lack are still banned (the draft stops there) but nothing the model wanted was refused."""
    import torch

    p = numbers_from(["It holds 14,100 tweets."])
    ids = torch.tensor([[16] + [CHARS.index(c) for c in (" has", " ", "1")]])  # " has 1"
    made_up = p(ids, torch.ones(1, len(CHARS)))
    assert made_up[0, CHARS.index("0")] == float("-inf") and made_up[0, CHARS.index("4")] == 1
    assert p.cuts == {}
    # the same tensor again for the next drafted token, banned in place: its digits are all that is left
    narrowed = torch.full((1, len(CHARS)), -float("inf"))
    narrowed[0, [CHARS.index(d) for d in "0123456789"]] = 1.0
    p(ids, narrowed)
    assert p.cuts == {}
    real = torch.zeros(1, len(CHARS))
    real[0, CHARS.index("0")] = 5.0  # the model wants "10": refused, so the sentence's figure is not its own
    p(ids, real)
    assert p.cuts == {0: [" has 1"]}
