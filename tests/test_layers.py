"""The package graph points one way: base (ragqa config, errors, text, citations, metrics, generators)
<- stages (ingest, retrieval, finetune) <- front ends (ragqa.answer/evaluate/cli, ui)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "retrieval", "finetune")
FRONT_ENDS = ("ragqa.answer", "ragqa.evaluate", "ragqa.cli", "ragqa.qa_formats",
              "ragqa._report", "ragqa.__main__", "ui")


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def modules(*packages: str) -> list[Path]:
    return [p for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))]


def is_under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(files: list[Path], forbidden) -> list[str]:
    return sorted(f"{f.name} imports {m}" for f in files for m in imports(f) if is_under(m, forbidden))


def test_base_imports_no_stage_and_no_front_end():
    base = [p for p in modules("ragqa") if not is_under(".".join(p.relative_to(ROOT).with_suffix("").parts),
                                                        FRONT_ENDS)]
    assert violations(base, STAGES + FRONT_ENDS) == []


def test_stages_import_only_the_base_from_ragqa():
    assert violations(modules(*STAGES), FRONT_ENDS) == []


def test_nothing_imports_the_cli_and_only_the_cli_imports_the_ui():
    others = [p for p in modules("ragqa", *STAGES, "ui", "bench") if p.name != "__main__.py"]
    assert violations(others, ("ragqa.cli",)) == []
    assert violations([p for p in others if p.parent.name != "ui" and p.name not in ("cli.py", "ui_load.py")],
                      ("ui",)) == []


def test_the_check_catches_a_stage_importing_the_answer_pipeline(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("def f():\n    from ragqa.answer import answer\n")
    assert violations([bad], FRONT_ENDS)


def test_finetune_builds_on_the_base_and_retrieval_only():
    assert violations(modules("finetune"), ("ingest", "ui") + FRONT_ENDS) == []


@pytest.mark.parametrize("package", ["ragqa", "ingest", "retrieval", "finetune", "ui"])
def test_each_package_imports_first_without_cycles(package):
    import subprocess
    import sys

    code = f"import {package}; import ragqa.cli"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


class TrigramEmbedder:
    """A third-party embedder written to the ``Embedder`` Protocol alone (no ragqa base class):
    character trigrams hashed into 256 dims, so texts sharing words score high."""

    id, dim, max_tokens = "third-party/trigram", 256, 48

    def embed_batch(self, texts, progress=False):
        import zlib

        import numpy as np

        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            t = f"  {text.lower()} "
            for i in range(len(t) - 2):
                out[row, zlib.crc32(t[i:i + 3].encode()) % self.dim] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def count_tokens(self, texts):
        return [len(t.split()) + 2 for t in texts]

    def token_offsets(self, text):
        import re

        return [m.span() for m in re.finditer(r"\S+", text)]


def test_a_third_party_embedder_written_to_the_protocol_ingests_and_searches(tmp_path):
    from ingest import ingest
    from retrieval import Retriever
    from retrieval.store import IndexStore

    (tmp_path / "a.md").write_text("# Adapters\n\nLow-rank adapters freeze the pretrained weights of the model.\n")
    (tmp_path / "b.md").write_text("# Tokenizers\n\nByte-pair encoding merges frequent symbol pairs into tokens.\n")
    embedder = TrigramEmbedder()
    report = ingest([tmp_path], index="tp", embedder=embedder, progress=False)
    assert len(report.added) == 2 and report.truncated == 0
    hits = Retriever(IndexStore.open("tp", embedder_id=embedder.id), embedder).search("byte-pair encoding", k=1)
    assert hits[0].chunk.path.endswith("b.md")
