from pathlib import Path

import pytest

from ragqa.config import load_config
from ragqa.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")))
def test_shipped_configs_load(path):
    """Every value a shipped file sets is what the loaded config holds (a file that were ignored fails)."""
    import tomllib

    cfg, data = load_config(path), tomllib.loads(path.read_text())
    assert data, f"{path.name} sets nothing"
    for section, values in data.items():
        for key, value in values.items():
            assert getattr(getattr(cfg, section), key) == value, f"{path.name}: [{section}] {key}"


def test_flags_override_file_and_none_is_ignored(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[retrieval]\nk = 9\nmode = "bm25"\n')
    cfg = load_config(f, retrieval={"k": 3, "mode": None})
    assert cfg.retrieval.k == 3 and cfg.retrieval.mode == "bm25"


def test_invalid_values_name_the_field_and_fix(tmp_path):
    with pytest.raises(ConfigError, match="ingest.pdf_parser='pdfminer': use 'pypdfium2' or 'pypdf'"):
        load_config(None, ingest={"pdf_parser": "pdfminer"})  # a missing --config file is an error now
    f = tmp_path / "c.toml"
    f.write_text("[ingest]\nchunk_size = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['chunk_size'\] in \[ingest\]"):
        load_config(f)
    with pytest.raises(ConfigError, match=r"data.reply_kinds: unknown \['riddles'\] — use some of factual"):
        load_config(None, data={"reply_kinds": "factual,riddles"})
    with pytest.raises(ConfigError, match=r"answer.rerank_depth=-1: 0 \(retrieval's order\) or the number"):
        load_config(None, answer={"rerank_depth": -1})


def test_the_example_config_shows_the_defaults():
    """configs/ragqa.toml says its values are the defaults: keep it true when a default changes."""
    import tomllib

    from ragqa.config import Config

    defaults = Config()
    for section, values in tomllib.loads((ROOT / "configs" / "ragqa.toml").read_text()).items():
        for key, value in values.items():
            assert getattr(getattr(defaults, section), key) == value, f"[{section}] {key}"


def test_the_adapter_setting_resolves_auto_none_and_folders(tmp_path, monkeypatch):
    from ragqa import config as c

    shipped = tmp_path / "smollm2-answer"
    monkeypatch.setattr(c, "PACKAGED_ADAPTER", shipped)
    assert c.resolve_adapter(c.DEFAULT_GENERATOR, "auto") == ""  # nothing shipped: no adapter
    shipped.mkdir()
    (shipped / "adapter_config.json").write_text("{}")
    assert c.resolve_adapter(c.DEFAULT_GENERATOR, "auto") == str(shipped)
    assert c.resolve_adapter("Qwen/Qwen2.5-3B-Instruct", "auto") == ""  # trained for the default model only
    assert c.resolve_adapter(c.DEFAULT_GENERATOR, "none") == c.resolve_adapter(c.DEFAULT_GENERATOR, "") == ""
    assert c.resolve_adapter(c.DEFAULT_GENERATOR, "runs/papers") == "runs/papers"


def test_the_shipped_answer_adapter_is_small_fits_the_default_model_and_lists_its_sources():
    import json

    from ragqa import config as c

    folder = c.PACKAGED_ADAPTER
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == c.DEFAULT_GENERATOR
    assert (folder / "adapter_model.safetensors").stat().st_size < 2 * 2**20  # bf16, well under 2 MiB
    card = (folder / "README.md").read_text()
    assert "srivastava2014_dropout.pdf" in card and "--adapter none" in card  # what it saw; how to turn it off
    assert c.resolve_adapter(c.DEFAULT_GENERATOR, "auto") == str(folder)
