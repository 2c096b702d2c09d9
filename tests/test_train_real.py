"""`ragqa train` on the real offline answer model (SmolLM2-135M-Instruct): a few LoRA steps lower
the loss, the adapter is saved, reloads through the answer path, and its replies stop."""
import pytest

from ragqa.config import Config, GeneratorConfig, TrainConfig
from test_train import chat, write_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_short_lora_run_on_smollm2_learns_and_its_adapter_answers(real_generator, tmp_path):
    from finetune import train
    from ragqa.generators import load_generator

    base = real_generator.model.config._name_or_path  # the converted folder the session already made
    data = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(12)])
    config = Config(train=TrainConfig(max_steps=6, batch_size=4, learning_rate=1e-3, logging_steps=1,
                                      smoke_steps=2, save_steps=3, warmup_ratio=0.0),
                    generator=GeneratorConfig(precision="fp32"))
    metrics = train(data, base, tmp_path / "run", config, progress=False)
    assert metrics["smoke"]["stopped"]  # the pre-flight smoke generation ended with EOS
    assert metrics["log"][-1]["loss"] < metrics["log"][0]["loss"] - 0.3
    assert metrics["trainable_parameters"] < 0.05 * metrics["parameters"]
    tuned = load_generator(GeneratorConfig(model=base, adapter=str(tmp_path / "run"), max_new_tokens=48,
                                           precision="fp32"))
    reply = "".join(tuned.generate(chat(20)[:-1]))
    assert "box number 20" in reply and tuned.count_tokens(reply) < 48  # learned the quote, and stopped


def test_preferences_move_the_shipped_smollm2_adapter_toward_the_chosen_replies(tmp_path):
    import json

    from finetune import prefer
    from ragqa.config import PACKAGED_ADAPTER, PreferConfig
    from test_train import COLOURS

    pairs = [{"split": split, "kind": "factual", "prompt": chat(i)[:-1], "chosen": f"Box {i} is {COLOURS[i]}.",
              "rejected": f"Box {i} is {COLOURS[i + 3]}."} for i in range(4) for split in ("train", "validation")]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    config = Config(prefer=PreferConfig(learning_rate=1e-3, epochs=1, grad_accum=2))  # the default model, adapter auto
    m = prefer(tmp_path / "pairs.jsonl", tmp_path / "pref", config, progress=False)
    assert m["init_adapter"] == str(PACKAGED_ADAPTER) and m["validation_accuracy_before"] == 0  # "auto", resolved
    assert m["epochs"][-1]["validation_accuracy"] >= 0.75  # the right colour now beats the wrong one
    assert (tmp_path / "pref" / "adapter_model.safetensors").is_file()
