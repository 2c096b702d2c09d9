"""Hostile input never loses a batch: bad pages, bombs, odd files and names, racing readers."""
import os
import threading

import pytest
from fakes import (BROKEN_PAGE_TREES, WordEmbedder, make_broken_page_tree_pdf, make_flate_bomb_pdf,
                   make_paper_pdf, make_raw_pdf)

from ingest import ingest
from ragqa.config import load_config
from retrieval.store import IndexStore


def _names(problems) -> dict:
    return {os.path.basename(p.path): p.reason for p in problems}


def _run(paths, word_embedder, index="h", **ingest_cfg):
    cfg = load_config(None, ingest=ingest_cfg)
    return ingest(paths, index=index, config=cfg, embedder=word_embedder, progress=False)


# 1. page-level PDF errors ------------------------------------------------------------------------

@pytest.mark.parametrize("parser", ["pypdfium2", "pypdf"])
def test_broken_page_trees_keep_readable_pages_and_the_batch(tmp_path, word_embedder, parser):
    for kind in BROKEN_PAGE_TREES:
        make_broken_page_tree_pdf(tmp_path / f"{kind}.pdf", kind)
    make_paper_pdf(tmp_path / "good.pdf", title="A Good Paper About Retrieval", topic="retrieval")
    report = _run([tmp_path], word_embedder, pdf_parser=parser)
    assert "good.pdf" in {os.path.basename(p) for p in report.added}
    problems = {**_names(report.skipped), **_names(report.warnings)}
    ingested = {os.path.basename(p) for p in report.added}
    for kind in BROKEN_PAGE_TREES:  # each is ingested (whole, or with a warning) or skipped with one line
        assert f"{kind}.pdf" in ingested or f"{kind}.pdf" in problems, kind
    assert not set(_names(report.skipped)) & set(_names(report.warnings))
    if parser == "pypdfium2":  # pdfium sees a 9-page document whose pages 5-9 do not exist
        assert _names(report.warnings)["count_lies.pdf"].startswith("pages 5-9 of 9 unreadable")
        assert "page 4 of 4 unreadable" in _names(report.warnings)["kid_dangling.pdf"]
        store = IndexStore.open("h")
        doc = store.manifest.docs[store.find_doc("kid_dangling.pdf")]
        assert doc["pages"] == 4 and store.pages[doc["doc_id"]][3] == ""  # page numbers stay right


def test_page_errors_surface_as_a_warning_line(tmp_path, word_embedder):
    path = make_broken_page_tree_pdf(tmp_path / "lying.pdf", "count_lies")
    report = _run([path], word_embedder)
    [warning] = report.warnings
    assert str(warning).startswith(f"{path}: pages 5-9 of 9 unreadable (Failed to load page.), left out — repair")


# 5. duplicates only of what was ingested ----------------------------------------------------------

def test_identical_bad_files_each_get_a_skip_line(tmp_path, word_embedder):
    for name in ("a.pdf", "b.md", "c.txt", "d.rst"):
        (tmp_path / name).write_bytes(b"")
    for name in ("bad1.pdf", "bad2.pdf"):
        (tmp_path / name).write_bytes(b"%PDF-1.4\n garbage that is no PDF at all")
    (tmp_path / "ok.md").write_text("# Fine\n\nA document with enough words to be ingested here.")
    for _ in range(2):  # the second run reports them again, not as "unchanged"
        report = _run([tmp_path], word_embedder)
        assert not report.aliased
        reasons = _names(report.skipped)
        assert {reasons[n] for n in ("a.pdf", "b.md", "c.txt", "d.rst")} == {"empty file (0 bytes)"}
        assert reasons["bad1.pdf"] == reasons["bad2.pdf"] and reasons["bad1.pdf"].startswith("corrupt")
        assert len(report.skipped) == 6
    assert list(IndexStore.open("h").manifest.files) == [str(tmp_path / "ok.md")]


# 6. resource limits ----------------------------------------------------------------------------

def test_special_files_are_skipped_without_hanging(tmp_path, word_embedder):
    os.mkfifo(tmp_path / "fifo.pdf")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    (tmp_path / "fifo-link.md").symlink_to(tmp_path / "fifo.pdf")
    (tmp_path / "ok.md").write_text("# Fine\n\nA document with enough words to be ingested here.")
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=_run([tmp_path], word_embedder)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "ingest hangs on a FIFO or a device"
    reasons = _names(result["r"].skipped)
    assert reasons == {n: "not a regular file (a device, FIFO or socket)" for n in ("fifo.pdf", "zero.txt", "fifo-link.md")}


def test_flate_bomb_is_refused_before_it_is_inflated(tmp_path, word_embedder):
    make_flate_bomb_pdf(tmp_path / "bomb.pdf", inflated_mb=64)
    make_raw_pdf(tmp_path / "plain.pdf", b"BT /F1 12 Tf 72 720 Td (An uncompressed page about retrieval and its many uses.) Tj ET",
                 compressed=False)
    report = _run([tmp_path], word_embedder)
    assert _names(report.skipped)["bomb.pdf"].startswith("compressed streams inflate past 100x the file size")
    assert [os.path.basename(p) for p in report.added] == ["plain.pdf"]


def test_size_page_and_character_limits_each_give_one_line(tmp_path, word_embedder):
    make_paper_pdf(tmp_path / "paper.pdf")
    (tmp_path / "big.txt").write_text("word " * 5000)
    (tmp_path / "huge.md").write_bytes(b"# Huge\n\n" + b"x " * 600_000)
    (tmp_path / "page.html").write_text("<html><body>" + '<div class="cell">word</div>' * 3000 + "</body></html>")
    report = _run([tmp_path], word_embedder, max_pages=2, max_file_chars=10_000, max_file_mb=1.0)
    assert _names(report.skipped) == {"huge.md": "1.2 MB is over the ingest.max_file_mb limit of 1 MB"}
    warnings = _names(report.warnings)
    assert warnings == {"paper.pdf": "only the first 2 of 4 pages read (ingest.max_pages)",
                        "big.txt": "text cut at 10,000 characters",
                        "page.html": "HTML cut at 40,000 characters before parsing"}
    store = IndexStore.open("h")
    assert store.manifest.docs[store.find_doc("paper.pdf")]["pages"] == 2
    assert sum(len(p) for p in store.pages[store.find_doc("big.txt")]) <= 10_000


def test_a_file_hitting_several_limits_gets_one_line(tmp_path, word_embedder):
    path = make_broken_page_tree_pdf(tmp_path / "lying.pdf", "count_lies")  # pages 5-9 of 9 do not exist
    report = _run([path], word_embedder, max_pages=6)
    [line] = [str(w) for w in report.warnings]
    assert line == (f"{path}: pages 5-6 of 9 unreadable (Failed to load page.), left out; only the first 6 of 9 "
                    "pages read (ingest.max_pages) — repair it (e.g. qpdf in.pdf out.pdf) and ingest it again; "
                    "split it or raise ingest.max_pages")


class _FailingEmbedder(WordEmbedder):
    """Dies (like a kill) on the ``fail_at``-th embedding call."""

    def __init__(self, fail_at: int):
        super().__init__()
        self.fail_at, self.batches = fail_at, 0

    def embed_batch(self, texts, progress=False):
        self.batches += 1
        if self.batches == self.fail_at:
            raise KeyboardInterrupt
        return super().embed_batch(texts)


def test_interrupted_long_ingest_keeps_finished_steps(tmp_path):
    for i in range(5):
        (tmp_path / f"doc{i}.md").write_text(f"# Doc {i}\n\nDocument number {i} talks about topic{i} at length.")
    with pytest.raises(KeyboardInterrupt):
        _run([tmp_path], _FailingEmbedder(fail_at=4), commit_every=2)  # call 1 is the probe
    store = IndexStore.open("h")
    assert sorted(os.path.basename(p) for p in store.manifest.files) == ["doc0.md", "doc1.md", "doc2.md", "doc3.md"]
    report = _run([tmp_path], WordEmbedder(), commit_every=2)
    assert [os.path.basename(p) for p in report.added] == ["doc4.md"] and len(report.unchanged) == 4


# 7. format gaps ----------------------------------------------------------------------------------

def test_bom_and_junk_before_pdf_header_and_utf16_text_are_read(tmp_path, word_embedder):
    data = make_paper_pdf(tmp_path / "src.pdf").read_bytes()
    (tmp_path / "src.pdf").unlink()
    (tmp_path / "bom.pdf").write_bytes(b"\xef\xbb\xbf" + data)
    (tmp_path / "junk.pdf").write_bytes(b"Content-Type: application/pdf\r\n" * 30 + data)
    (tmp_path / "utf16.txt").write_bytes("Notes written in UTF-16 about retrieval – naïve ones.".encode("utf-16"))
    report = _run([tmp_path], word_embedder)
    assert not report.skipped and len(report.added) == 3
    store = IndexStore.open("h")
    assert "naïve" in " ".join(c.text for c in store.chunks)


def test_aes_pdf_without_cryptography_is_one_line(tmp_path, word_embedder, monkeypatch):
    import pypdf

    def needs_cryptography(*args, **kwargs):
        raise pypdf.errors.DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(pypdf, "PdfReader", needs_cryptography)
    path = make_paper_pdf(tmp_path / "aes.pdf")
    report = _run([path], word_embedder, pdf_parser="pypdf")
    assert [str(s) for s in report.skipped] == [
        f"{path}: AES-encrypted PDF needs the 'cryptography' package — pip install cryptography, "
        "or use --pdf-parser pypdfium2"]


def test_unreadable_subfolder_is_reported(tmp_path, word_embedder, monkeypatch):
    (tmp_path / "ok.md").write_text("# Fine\n\nA document with enough words to be ingested here.")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "inside.md").write_text("# Hidden\n\nNobody can read this folder at the moment.")
    scandir = os.scandir

    def denied(path="."):  # as chmod 000 would (tests may run as root, who reads everything)
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    report = _run([tmp_path], word_embedder)
    assert _names(report.skipped) == {"locked": "cannot read folder (Permission denied)"}
    assert [os.path.basename(p) for p in report.added] == ["ok.md"]


# 2, 3. document text and file names on the terminal ----------------------------------------------

HOSTILE_TEXT = ("[INST] Summarise the paper. [/INST] The model uses [/bold] tags and [word] markers; "
                "\x1b]0;pwned\x07 sets a title and \x1b[2J clears the screen.")


@pytest.fixture
def cli(monkeypatch):
    from typer.testing import CliRunner

    from ragqa import cli as cli_module
    from ragqa.cli import app

    monkeypatch.setattr("retrieval.embed.load_embedder", lambda config=None: WordEmbedder())
    for console in (cli_module.out, cli_module.err):  # wide enough that tables do not cut paths
        monkeypatch.setattr(console, "width", 400)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_document_text_titles_and_paths_print_as_plain_text(tmp_path, cli):
    folder = tmp_path / "chat [" / "INST] papers [" / "bold]"  # a path holding "[/INST]" and "[/bold]"
    folder.mkdir(parents=True)
    (folder / "[bold] llama\x1b[2J.md").write_text(f"# Chat format [/INST] \x1b]0;t\x07\n\n{HOSTILE_TEXT}\n")
    (folder / "empty\x1b[31m.pdf").write_bytes(b"")
    result = cli("ingest", "-q", str(folder), "--index", "t")
    assert result.exit_code == 0 and result.exception is None, result.output
    skip_line = f"skipped {folder}/empty\\x1b[31m.pdf: empty file (0 bytes)"
    assert skip_line in result.output
    for args in (("search", "Summarise paper model tags", "--index", "t"), ("index", "stats", "--index", "t")):
        result = cli(*args)
        assert result.exit_code == 0 and result.exception is None, result.output
        assert "\x1b" not in result.output and "\\x1b" in result.output
        assert "[/INST]" in result.output
    search = cli("search", "Summarise paper model tags", "--index", "t").output
    assert "[/bold] tags and [word] markers" in search and "[bold] llama\\x1b[2J.md, p. 1" in search
    assert "chat [/INST] papers [/bold]" in cli("index", "stats", "--index", "t").output
    title = cli("index", "stats", "--index", "t").output
    assert "Chat format [/INST] \\x1b]0;t\\x07" in title


def test_non_utf8_and_newline_file_names(tmp_path, cli):
    latin1 = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.md")  # latin-1 bytes, not UTF-8
    with open(os.fsencode(latin1), "w") as f:
        f.write("# Caf\u00e9 notes\n\nNotes about espresso extraction and grind size for baristas.\n")
    (tmp_path / "two\nlines.md").write_bytes(b"")
    result = cli("ingest", "-q", str(tmp_path), "--index", "t")
    assert result.exit_code == 0 and result.exception is None, result.output
    assert "two\\nlines.md: empty file (0 bytes)" in result.output  # one line, the newline shown
    store = IndexStore.open("t")
    assert list(store.manifest.files) == [latin1]  # the exact bytes, so the file is found again
    assert os.path.exists(store.chunks[0].path)
    assert not [p for p in store.root.iterdir() if p.name.startswith(".gen-")]
    assert "caf\\xe9.md" in cli("index", "stats", "--index", "t").output
    assert "caf\\xe9.md, p. 1" in cli("search", "espresso grind", "--index", "t").output
    again = cli("ingest", "-q", str(tmp_path), "--index", "t")
    assert "0 added, 1 unchanged" in again.output


def test_search_errors_quoting_markup_stay_one_plain_line(tmp_path, cli):
    (tmp_path / "a.md").write_text("# A\n\nSome text about retrieval to make the index exist at all.")
    cli("ingest", "-q", str(tmp_path), "--index", "t")
    result = cli("search", "x", "--index", "t", "--doc", "[/INST]\x1b[2J")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "document '[/INST]\\x1b[2J' is not in index 't'" in result.output


# 4. readers racing commits -----------------------------------------------------------------------

def test_opens_during_commits_never_fail(tmp_path, word_embedder):
    for i in range(3):
        (tmp_path / f"d{i}.md").write_text(f"# D{i}\n\n" + " ".join(f"w{i}x{j}" for j in range(2000)))
    _run([tmp_path], word_embedder)
    failures, opens, done = [], [0], threading.Event()

    def reader():
        while not done.is_set():
            try:
                IndexStore.open("h")
                opens[0] += 1
            except Exception as exc:  # noqa: BLE001 - any failure is the bug under test
                failures.append(repr(exc))

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for n in range(8):  # eight commits, each replacing one document
            (tmp_path / f"d{n % 3}.md").write_text(f"# D{n}\n\n" + " ".join(f"v{n}x{j}" for j in range(2000)))
            _run([tmp_path], word_embedder)
    finally:
        done.set()
        for t in readers:
            t.join()
    assert opens[0] > 20 and failures == []


# acceptance: one folder of everything -------------------------------------------------------------

def _hostile_folder(root):
    """Good files, and bad ones mapped to the words their one line must hold."""
    import random

    from fakes import make_encrypted_pdf, make_image_only_pdf

    root.mkdir()
    good = [make_paper_pdf(root / "retrieval.pdf", title="Dense Retrieval For Papers", topic="retriever"),
            make_paper_pdf(root / "decoding.pdf", title="Speculative Decoding Explained", topic="drafter")]
    (root / "notes.md").write_text("# Notes\n\nBeam search keeps the best partial hypotheses at every step.\n")
    (root / "utf16.txt").write_bytes("Contrastive loss pulls matching pairs together.".encode("utf-16"))
    latin1 = os.fsencode(str(root)) + b"/caf\xe9.md"
    with open(latin1, "wb") as f:
        f.write("# Café\n\nEspresso extraction depends on grind size and water temperature.\n".encode("latin-1"))
    good.append(os.fsdecode(latin1))
    bad = {}
    data = good[0].read_bytes()
    (root / "truncated.pdf").write_bytes(data[:400])
    bad["truncated.pdf"] = "corrupt or truncated PDF"
    flipped = []  # may be read whole, partly or not at all, depending on the parser: at most one line
    for kind in BROKEN_PAGE_TREES:
        flipped.append(make_broken_page_tree_pdf(root / f"tree-{kind}.pdf", kind).name)
    make_flate_bomb_pdf(root / "bomb.pdf", inflated_mb=64)
    bad["bomb.pdf"] = "decompression bomb"
    make_encrypted_pdf(root / "locked.pdf", good[1])
    bad["locked.pdf"] = "encrypted PDF"
    for name in ("empty.pdf", "empty.md", "empty.txt", "two\nlines.rst"):
        (root / name).write_bytes(b"")
        bad[name.replace("\n", "\\n")] = "empty file (0 bytes)"
    make_image_only_pdf(root / "scan.pdf")
    bad["scan.pdf"] = "no text layer"
    (root / "fake.pdf").write_text("<html>not a pdf</html>")
    bad["fake.pdf"] = "not a PDF"
    (root / "binary.txt").write_bytes(bytes(range(256)) * 4)
    bad["binary.txt"] = "binary content"
    os.mkfifo(root / "fifo.pdf")
    (root / "zero.md").symlink_to("/dev/zero")
    (root / "gone.pdf").symlink_to(root / "nowhere.pdf")
    bad.update({"fifo.pdf": "not a regular file", "zero.md": "not a regular file", "gone.pdf": "cannot read"})
    (root / "[bold]\x1b]0;pwned\x07.md").write_bytes(b"")
    bad["[bold]\\x1b]0;pwned\\x07.md"] = "empty file"
    (root / "big.txt").write_text("token " * 400_000)  # 2.4 MB, over the 2 MB limit of the test config
    bad["big.txt"] = "over the ingest.max_file_mb limit"
    (root / "long.md").write_text("# Long\n\n" + "many words here " * 20_000)
    bad["long.md"] = "text cut at 200,000 characters"
    rng = random.Random(7)
    for i in range(8):  # randomly bit-flipped copies: read, partly read or skipped, never a traceback
        b = bytearray(data)
        for _ in range(20):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        (root / f"flip{i}.pdf").write_bytes(bytes(b))
        flipped.append(f"flip{i}.pdf")
    return good, bad, flipped


@pytest.mark.parametrize("parser", ["pypdfium2", "pypdf"])
def test_hostile_folder_keeps_the_good_files_with_one_line_per_bad_file(tmp_path, cli, parser, monkeypatch):
    monkeypatch.setattr("ingest._pipeline.machine_busy", lambda: "")  # its line is the load's, not the files'
    good, bad, flipped = _hostile_folder(tmp_path / "in")
    config = tmp_path / "ragqa.toml"
    config.write_text("[ingest]\nmax_file_mb = 2.0\nmax_file_chars = 200000\n")
    result = cli("ingest", "-q", str(tmp_path / "in"), "--index", "h", "--config", str(config), "--pdf-parser", parser)
    assert result.exit_code == 0 and result.exception is None, result.output
    assert "Traceback" not in result.output and "\x1b" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("skipped ", "partly read "))]
    summary = result.output.splitlines()[len(lines)]
    assert summary.startswith("index h: "), summary  # nothing else before it: no parser chatter
    for name, words in bad.items():
        mine = [line for line in lines if f"/{name}: " in line]
        assert len(mine) == 1 and words in mine[0] and " — " in mine[0], (name, mine)
    for name in flipped:
        assert len([line for line in lines if f"/{name}: " in line]) <= 1
    assert len(lines) == len(bad) + sum(any(f"/{n}: " in line for line in lines) for n in flipped)
    store = IndexStore.open("h")
    assert {str(p) for p in good} <= set(store.manifest.files)
    for query, name in (("speculative drafter", "decoding.pdf"), ("beam search hypotheses", "notes.md"),
                        ("contrastive loss pairs", "utf16.txt"), ("espresso grind", "caf\\xe9.md")):
        top = cli("search", query, "--index", "h", "-k", "1").output.splitlines()[0]
        assert name in top, (query, top)


# 8. commands ---------------------------------------------------------------------------------------

@pytest.fixture
def small_index(tmp_path, word_embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(8):
        (folder / f"d{i}.md").write_text(f"# Doc {i}\n\nPassage {i} about retrieval and ranking of papers.\n")
    _run([folder], word_embedder, index="t")
    return folder


def test_search_refuses_an_empty_query_and_takes_k_from_the_config(tmp_path, cli, small_index):
    result = cli("search", "  ", "--index", "t")
    assert result.exit_code == 1 and "empty query — give words to look for" in result.output
    config = tmp_path / "c.toml"
    config.write_text("[retrieval]\nk = 2\n")
    hits = [line for line in cli("search", "retrieval ranking", "--index", "t", "-c", str(config)).output.splitlines()
            if line.startswith("[")]
    assert len(hits) == 2
    assert len([line for line in cli("search", "retrieval", "--index", "t", "-c", str(config), "-k", "3")
                .output.splitlines() if line.startswith("[")]) == 3


def test_a_missing_config_file_is_an_error(tmp_path, cli, small_index):
    result = cli("search", "retrieval", "--index", "t", "--config", str(tmp_path / "typo.toml"))
    assert result.exit_code == 1 and "typo.toml: config file not found — check the path" in result.output


class _OtherWeights(WordEmbedder):
    """The same name as WordEmbedder, other vectors: a model folder replaced in place."""

    def embed_batch(self, texts, progress=False):
        return super().embed_batch([" ".join(w[::-1] for w in t.split()) for t in texts])


class _OtherSize(WordEmbedder):
    dim = 256


@pytest.mark.parametrize("swapped, message", [(_OtherWeights, "was built with other weights under the name"),
                                               (_OtherSize, "holds 512-dimensional vectors but embedder")])
def test_a_model_replaced_in_place_is_refused_with_one_line(small_index, monkeypatch, cli, swapped, message):
    from retrieval import open_retriever
    from ragqa.errors import EmbedderMismatch

    with pytest.raises(EmbedderMismatch, match=message):
        open_retriever("t", embedder=swapped())
    (small_index / "new.md").write_text("# New\n\nA new passage that would be embedded by the swapped model.")
    with pytest.raises(EmbedderMismatch, match=message):
        _run([small_index], swapped(), index="t")
    monkeypatch.setattr("retrieval.embed.load_embedder", lambda config=None: swapped())
    result = cli("search", "retrieval", "--index", "t")
    assert result.exit_code == 1 and message in result.output and "ragqa index remove --index t" in result.output


def test_embedder_mismatch_names_a_fix_that_exists(small_index):
    from ragqa.errors import EmbedderMismatch

    with pytest.raises(EmbedderMismatch) as info:
        IndexStore.open("t", embedder_id="other/model")
    assert "--embedder" not in str(info.value) and "under [embedder] in your config file" in str(info.value)


def test_a_killed_index_remove_can_be_finished(small_index, cli):
    from retrieval.store import index_path

    (index_path("t") / "CURRENT").unlink()  # what kill -9 between the two steps of a remove leaves
    assert "t" not in cli("index", "list").output.split()
    result = cli("index", "remove", "--index", "t", "-y")
    assert result.exit_code == 0, result.output
    assert not index_path("t").exists()


def test_serve_on_a_busy_port_is_one_line(cli):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("serve", "--port", str(port))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"cannot serve on 127.0.0.1:{port} (Address already in use) — stop the program using it" in result.output


def test_an_unknown_embedder_fails_at_once_without_network(monkeypatch):
    import socket
    import time

    from ragqa.config import EmbedderConfig
    from ragqa.errors import ConfigError
    from retrieval.embed import SentenceTransformerEmbedder

    def no_network(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", no_network)
    t = time.perf_counter()
    with pytest.raises(ConfigError, match="embedder nobody/no-such-model: not a local folder, not in the Hugging "
                                          "Face cache, and huggingface.co cannot be reached"):
        SentenceTransformerEmbedder(EmbedderConfig(model="nobody/no-such-model"))
    assert time.perf_counter() - t < 5
