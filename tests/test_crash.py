"""kill -9 during ingest leaves the previous index loadable; a re-run finishes without duplicates."""
import sys
import textwrap
from pathlib import Path

import pytest
from fakes import kill_when_marked

from retrieval.store import IndexStore

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from fakes import WordEmbedder
    from ingest import ingest

    stage, corpus, marker = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    def before_flip(gen):  # the new generation is fully written, CURRENT not yet switched
        marker.write_text("flip")
        time.sleep(60)
    emb = WordEmbedder(delay=0.05 if stage == "embed" else 0.0)
    if stage == "embed":
        marker.write_text("embed")
    ingest([corpus], index="k", embedder=emb, progress=False,
           before_flip=before_flip if stage == "flip" else None)
""")


def _run_and_kill(tmp_path, stage, corpus):
    script = tmp_path / "ingest_script.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    marker = tmp_path / f"marker-{stage}"
    kill_when_marked([sys.executable, str(script), stage, str(corpus), str(marker)], marker)


@pytest.mark.parametrize("stage", ["embed", "flip"])
def test_kill_9_keeps_previous_index(tmp_path, word_embedder, stage):
    from ingest import ingest

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"old{i}.md").write_text(f"# Old {i}\n\nFirst version of document {i} about topic {i}.")
    ingest([corpus], index="k", embedder=word_embedder, progress=False)
    before = IndexStore.open("k")
    for i in range(40):
        (corpus / f"new{i}.md").write_text(f"# New {i}\n\n" + " ".join(f"word{i}x{j}" for j in range(300)))
    _run_and_kill(tmp_path, stage, corpus)

    after_kill = IndexStore.open("k")  # still the previous generation, fully loadable
    assert [c.id for c in after_kill.chunks] == [c.id for c in before.chunks]
    assert after_kill.faiss.ntotal == len(before.chunks)

    ingest([corpus], index="k", embedder=word_embedder, progress=False)
    final = IndexStore.open("k")
    assert len(final.manifest.docs) == 43
    assert len({c.id for c in final.chunks}) == len(final.chunks) == final.faiss.ntotal
    texts = [c.text for c in final.chunks]
    assert len(texts) == len(set(texts))
    leftovers = sorted(p.name for p in final.root.iterdir() if p.is_dir())
    # the half-written generation was cleaned up; the previous one stays for readers still loading it
    assert len(leftovers) == 2 and not any(name.startswith(".") for name in leftovers)
