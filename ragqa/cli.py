"""The ``ragqa`` command: thin front doors to ingest, search, answering, the chat, evaluation and
index management. Each command parses its flags into a config, calls one function and prints."""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ragqa.errors import RagqaError, printable

_NO_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0/C1 controls but tab and newline
app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Ask questions about your research papers and technical blog posts, locally.")
index_app = typer.Typer(no_args_is_help=True, help="List, inspect, migrate and remove indexes.")
app.add_typer(index_app, name="index")
out, err = Console(), Console(stderr=True)

IndexOpt = typer.Option("default", "--index", "-i", help="Index name (a folder under $RAGQA_HOME/indexes).")
BackendOpt = typer.Option(None, "--backend", help="Where a new index keeps its vectors: faiss (default) or milvus.")
UriOpt = typer.Option(None, "--uri", help="Milvus: http://HOST:19530, or a milvus-lite .db file "
                      "(default: milvus.db in the index folder). Token: $RAGQA_MILVUS_TOKEN.")
CollectionOpt = typer.Option(None, "--collection", help="Milvus collection (default: ragqa_INDEX).")
ConfigOpt = typer.Option(None, "--config", "-c", help="TOML config file (default: $RAGQA_HOME/ragqa.toml).")


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logs.")):
    from rich.logging import RichHandler

    # only our own logger: third-party INFO lines (faiss, sentence-transformers) are noise here
    log = logging.getLogger("ragqa")
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, RichHandler) for h in log.handlers):  # one handler, however often invoked
        log.addHandler(RichHandler(console=err, show_time=False, show_path=False))
    # no "Loading weights" bar per model load (it would bury the answer); read by transformers at
    # import, so commands that load no model never import it
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def friendly(fn):
    """Turn a RagqaError into one red line and exit code 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RagqaError as exc:
            err.print(_plain(("error:", "red"), f" {exc}"), soft_wrap=True)
            raise typer.Exit(1) from None
    return wrapper


def _plain(*parts):
    """One line where every str part is shown as plain text: document text, titles, paths and
    messages quoting them may hold '[/INST]' (not Rich markup) or ESC sequences (made visible).
    (text, style) pairs are our own labels."""
    from rich.text import Text

    return Text.assemble(*(printable(p) if isinstance(p, str) else p for p in parts))


@app.command()
@friendly
def ingest(paths: List[Path] = typer.Argument(..., help="PDF/Markdown/HTML/text files or folders."),
           index: str = IndexOpt, config: Optional[Path] = ConfigOpt,
           pdf_parser: Optional[str] = typer.Option(None, help="'pypdfium2' (default) or 'pypdf'."),
           embedder: Optional[str] = typer.Option(None, help="sentence-transformers name or path."),
           backend: Optional[str] = BackendOpt, uri: Optional[str] = UriOpt, collection: Optional[str] = CollectionOpt,
           quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars.")):
    """Add papers and blog posts to an index (unchanged files are skipped).

    Example: ragqa ingest ~/papers notes/blog.md --index papers
    On a Milvus server: ragqa ingest ~/papers --index lab --backend milvus --uri http://HOST:19530
    """
    from ingest import ingest as run_ingest
    from ragqa.config import load_config
    from retrieval.store import check_backend_choice, reach_new_backend

    cfg = load_config(config, ingest={"pdf_parser": pdf_parser}, embedder={"model": embedder},
                      index={"backend": backend, "uri": uri, "collection": collection})
    if backend or uri or collection:  # flags choose where a new index lives; an existing one stays put
        check_backend_choice(index, cfg.index)
    reach_new_backend(index, cfg.index)
    report = run_ingest(paths, index=index, config=cfg, progress=not quiet)
    for problem in report.skipped:
        err.print(_plain(("skipped", "yellow"), f" {problem}"), soft_wrap=True)
    for problem in report.warnings:
        err.print(_plain(("partly read", "yellow"), f" {problem}"), soft_wrap=True)
    secs = sum(report.seconds.values())
    out.print(f"index [bold]{index}[/bold]: {len(report.added)} added, {len(report.unchanged)} unchanged, "
              f"{len(report.aliased)} duplicate content, {len(report.skipped)} skipped; "
              f"{report.chunks_added} chunks added ({report.embedded} embedded, "
              f"{report.chunks_added - report.embedded} reused), {report.chunks_removed} removed, "
              f"{report.chunks_total} in index ({secs:.1f} s)")
    if not report.ok:
        err.print("[red]error:[/red] nothing was ingested — fix the files listed above and run again")
        raise typer.Exit(1)


@app.command()
@friendly
def search(query: str = typer.Argument(..., help="What to look for."),
           k: Optional[int] = typer.Option(None, "-k", help="Number of results (default 5, or retrieval.k)."),
           index: str = IndexOpt,
           doc: Optional[str] = typer.Option(None, "--doc", "-d", help="Only this document (file name, title or id)."),
           mode: Optional[str] = typer.Option(None, help="hybrid (default), dense or bm25."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
           config: Optional[Path] = ConfigOpt):
    """Find the passages that best match a query.

    Example: ragqa search "two pre-training tasks of BERT" -k 3 --index papers
    """
    from ragqa.config import load_config
    from retrieval import open_retriever

    if not query.strip():  # before loading anything, as ask does
        raise RagqaError('empty query — give words to look for, e.g. ragqa search "two pre-training tasks"')
    cfg = load_config(config, retrieval={"mode": mode, "k": k})
    hits = open_retriever(index, cfg).search(query, doc=doc)
    if as_json:
        for h in hits:
            out.print_json(json.dumps({"score": h.score, "dense": h.dense, "bm25": h.bm25, **vars(h.chunk)}))
        return
    if not hits:
        out.print("no results")
    for n, h in enumerate(hits, 1):
        out.print(_plain((f"[{n}]", "bold"), f" {h.score:.4f}  {h.chunk.location}"
                         f"{' — ' + h.chunk.section if h.chunk.section else ''}"), soft_wrap=True)
        out.print(_plain(f"    {h.snippet()}"), soft_wrap=True)


@index_app.command("list")
@friendly
def index_list():
    """List the indexes under $RAGQA_HOME/indexes."""
    from retrieval.store import list_indexes, read_manifest

    table = Table("index", "documents", "chunks", "embedder", "vectors")
    for name in list_indexes():
        m = read_manifest(name)  # no engine is contacted: the list shows even when one is down
        table.add_row(name, str(len(m.docs)), str(sum(len(d["chunk_ids"]) for d in m.docs.values())),
                      _plain(m.embedder), _plain(m.backend.get("kind", "faiss")))
    out.print(table)


@index_app.command("stats")
@friendly
def index_stats(index: str = IndexOpt):
    """Documents, pages and chunks of one index."""
    from retrieval.store import IndexStore

    store = IndexStore.open(index)
    m = store.manifest
    where = f"faiss {m.faiss}" if not store.on_engine else store.backend.describe()
    out.print(_plain(f"index {index}: {len(m.docs)} documents, {len(store.chunks)} chunks, embedder {m.embedder} "
                     f"(dim {m.dim}), {where}, chunking {m.chunking}"), soft_wrap=True)
    table = Table("doc id", "title", "kind", "pages", "chunks", "file(s)")
    for doc_id, d in sorted(m.docs.items(), key=lambda kv: kv[1]["title"].lower()):
        table.add_row(doc_id, _plain(d["title"][:60]), d["kind"], str(d["pages"]), str(len(d["chunk_ids"])),
                      _plain(*_lines(os.path.relpath(p) for p in d["paths"])))
    out.print(table)


def _lines(texts) -> list:
    """Parts for ``_plain``: the texts one per line (the newlines are ours, not escaped)."""
    parts = []
    for t in texts:
        parts += [("\n", ""), t] if parts else [t]
    return parts


@index_app.command("remove")
@friendly
def index_remove(index: str = IndexOpt,
                 doc: Optional[str] = typer.Option(None, "--doc", "-d", help="Remove only this document."),
                 yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")):
    """Remove one document from an index, or the whole index."""
    from retrieval.store import remove_document, remove_index

    what = f"document {doc!r} from index {index!r}" if doc else f"index {index!r}"
    if not yes and not typer.confirm(f"remove {printable(what)}?"):
        raise typer.Exit(1)
    remove_document(index, doc) if doc else remove_index(index)
    out.print(_plain(f"removed {what}"))


@index_app.command("migrate")
@friendly
def index_migrate(index: str = IndexOpt,
                  to: str = typer.Option(..., "--to", help="Engine to move the vectors to: milvus."),
                  uri: Optional[str] = UriOpt, collection: Optional[str] = CollectionOpt,
                  config: Optional[Path] = ConfigOpt):
    """Move a FAISS index's vectors into a vector engine (no re-embedding); every command then uses it.

    Example: ragqa index migrate --index papers --to milvus --uri http://HOST:19530
    """
    from ragqa.config import load_config
    from retrieval.migrate import migrate_index

    cfg = load_config(config, index={"backend": to, "uri": uri, "collection": collection})
    r = migrate_index(index, cfg.index)
    out.print(_plain(f"index {index}: {r['chunks']} vectors copied to {r['to']} ({r['in_engine']} in the collection, "
                     f"{r['seconds']:.1f} s), nothing re-embedded"), soft_wrap=True)


ModelOpt = typer.Option(None, "--model", "-m", help="HF id, local folder, .gguf file, or the served name with --base-url.")
AdapterOpt = typer.Option(None, "--adapter", "-a", help="PEFT/LoRA adapter folder (a `ragqa train` run); "
                          "none: the model untuned (default auto: the shipped answer adapter, if any).")
BaseUrlOpt = typer.Option(None, "--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (vLLM).")
PrecisionOpt = typer.Option(None, "--precision", help="auto, fp32, bf16, fp16, int8 or nf4.")


def _answer_config(config, k, model, adapter, base_url, precision):
    from ragqa.config import load_config

    return load_config(config, answer={"k": k}, generator={"model": model, "adapter": adapter,
                                                           "base_url": base_url, "precision": precision})


def _session(cfg, index: str, no_retrieval: bool):
    """Generator and retriever for ask/chat (the index is opened before the model loads)."""
    from ragqa.generators import load_generator
    from retrieval import open_retriever

    retriever = None if no_retrieval else open_retriever(index, cfg)
    return load_generator(cfg.generator), retriever


def _print_text(text: str) -> None:
    # generated text may echo a document's control sequences: drop them, keep line breaks
    out.print(_NO_CONTROL.sub("", text), end="", highlight=False, markup=False, soft_wrap=True)


def _print_answer(stream, as_json: bool):
    """Stream the text to a terminal, then citations, evidence and timings; returns the Answer.

    A streamed sentence can be left out once the reply is complete (it stated a figure its sources lack): the
    terminal then gets the answer again as checked, under the stream; piped output gets the checked answer alone.
    """
    from ragqa.answer import Answer

    live, shown = out.is_terminal and not as_json, ""
    for item in stream:
        if isinstance(item, Answer):
            result = item
        elif live:
            shown += item
            _print_text(item)
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
        return result
    if not live or result.text and " ".join(shown.split()) != " ".join(result.text.split()):
        if live:
            out.print("\n\nThe answer, as checked:", style="dim", highlight=False)
        _print_text(result.text)
    if not result.text:
        out.print(result.display, end="", style="dim", highlight=False, markup=False)
    out.print()
    if result.abstained:
        return result
    for s in result.sources:
        what = f'background for "{s.term}"' if s.term else (s.chunk.section or s.chunk.title)
        out.print(_plain(f"source [{s.n}] {s.label} — {what}"), style="dim", highlight=False, soft_wrap=True)
    from ragqa.citations import report_lines

    for text, ok in report_lines(result.citations, lambda n: (s := result.source(n)) and s.label):
        out.print(_plain((printable(text), "green" if ok else "red")), soft_wrap=True)  # a quote is document text
    for e in result.evidence:
        out.print(_plain(f'evidence for "{e.sentence[:80]}": [{e.source}] {result.source(e.source).label} — '
                         f'"{e.text[:200]}"'), style="dim", highlight=False, soft_wrap=True)
    if result.terms:
        out.print(_plain("terms: " + ", ".join(f"{t['term']}" + (f" → [{t['source']}]" if t["source"] else "")
                                               for t in result.terms)), style="dim", highlight=False)
    out.print(f"[dim]{escape(result.timing_line())}[/dim]", highlight=False)
    return result


@app.command()
@friendly
def ask(question: str = typer.Argument(..., help="Your question."), index: str = IndexOpt,
        no_retrieval: bool = typer.Option(False, "--no-retrieval", help="Answer from the model alone."),
        k: Optional[int] = typer.Option(None, "-k", help="Passages to retrieve (default 3)."),
        model: Optional[str] = ModelOpt, adapter: Optional[str] = AdapterOpt,
        base_url: Optional[str] = BaseUrlOpt, precision: Optional[str] = PrecisionOpt,
        as_json: bool = typer.Option(False, "--json", help="Print the whole result as JSON."),
        config: Optional[Path] = ConfigOpt):
    """Answer a question from your documents, with citations you can check.

    Example: ragqa ask "What are the two pre-training tasks of BERT?" --index papers
    """
    from ragqa.answer import check_question, stream_answer

    cfg = _answer_config(config, k, model, adapter, base_url, precision)
    check_question(question, cfg.answer)  # before loading anything
    generator, retriever = _session(cfg, index, no_retrieval)
    _print_answer(stream_answer(question, generator, retriever, cfg.answer, use_retrieval=not no_retrieval),
                  as_json)


@app.command()
@friendly
def chat(index: str = IndexOpt,
         no_retrieval: bool = typer.Option(False, "--no-retrieval", help="Answer from the model alone."),
         k: Optional[int] = typer.Option(None, "-k", help="Passages to retrieve (default 3)."),
         model: Optional[str] = ModelOpt, adapter: Optional[str] = AdapterOpt,
         base_url: Optional[str] = BaseUrlOpt, precision: Optional[str] = PrecisionOpt,
         config: Optional[Path] = ConfigOpt):
    """Chat with your documents in the terminal; follow-up questions use the conversation.

    Type /clear to forget the conversation, /exit (or Ctrl-D) to leave.
    """
    from ragqa.answer import stream_answer

    cfg = _answer_config(config, k, model, adapter, base_url, precision)
    generator, retriever = _session(cfg, index, no_retrieval)
    history: list[tuple[str, str]] = []
    while True:
        try:
            question = input("\n> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if question in ("/exit", "/quit"):
            break
        if question == "/clear":
            history.clear()
            continue
        if not question:
            continue
        try:
            result = _print_answer(stream_answer(question, generator, retriever, cfg.answer, history,
                                                 use_retrieval=not no_retrieval), False)
        except RagqaError as exc:  # one bad turn does not end the conversation
            err.print(_plain(("error:", "red"), f" {exc}"), soft_wrap=True)
            continue
        history.append((question, result.text))


@app.command()
@friendly
def serve(index: str = IndexOpt,
          host: Optional[str] = typer.Option(None, help="Address to bind (default 127.0.0.1: this machine only)."),
          port: Optional[int] = typer.Option(None, help="Port (default 7860)."),
          auth: Optional[str] = typer.Option(None, help="USER:PASSWORD required to open the page."),
          share: bool = typer.Option(False, "--share", help="Also publish a public gradio.live link (off by default)."),
          model: Optional[str] = ModelOpt, adapter: Optional[str] = AdapterOpt,
          base_url: Optional[str] = BaseUrlOpt, precision: Optional[str] = PrecisionOpt,
          config: Optional[Path] = ConfigOpt):
    """Open the chat in your browser: streamed answers, checked citations, sources, uploads.

    Example: ragqa serve --index papers   (then open http://127.0.0.1:7860)
    """
    from ragqa.config import load_config
    from ui import serve as run_server

    cfg = load_config(config, ui={"host": host, "port": port},
                      generator={"model": model, "adapter": adapter, "base_url": base_url, "precision": precision})
    if cfg.ui.host not in ("127.0.0.1", "localhost", "::1") and not auth:
        err.print(f"[yellow]warning:[/yellow] binding {cfg.ui.host} without --auth: anyone on your network can "
                  "read your documents through the chat", highlight=False)
    run_server(index=index, auth=auth, share=share, config=cfg)


@app.command("eval")
@friendly
def eval_cmd(qa: Path = typer.Option(..., "--qa", help="Questions: ARAGOG/QASPER/gen-data .jsonl, or CMRC2018/SQuAD .json."),
             index: str = IndexOpt,
             models: Optional[str] = typer.Option(None, help="Comma-separated: base and/or adapter folders (runs/NAME)."),
             retrieval: Optional[str] = typer.Option(None, help="Arms: on,off (default), on, or off."),
             out_dir: Path = typer.Option(..., "--out", "-o", help="Report folder, e.g. reports/aragog-dev."),
             limit: Optional[int] = typer.Option(None, help="First N questions only."),
             model: Optional[str] = ModelOpt, base_url: Optional[str] = BaseUrlOpt,
             precision: Optional[str] = PrecisionOpt, config: Optional[Path] = ConfigOpt):
    """Compare retrieval on vs off (and base vs tuned) on a question set, with 95% intervals.

    Example: ragqa eval --qa aragog_dev_qa.jsonl --index papers --out reports/aragog
    """
    from ragqa.config import load_config
    from ragqa.evaluate import evaluate

    cfg = load_config(config, eval={"models": models, "retrieval": retrieval, "limit": limit},
                      generator={"model": model, "base_url": base_url, "precision": precision})
    summary = evaluate(qa, index, out_dir, cfg)
    for problem in summary["problems"][:20]:
        err.print(_plain(("skipped", "yellow"), f" {problem}"), soft_wrap=True)
    if summary["missing_docs"]:
        err.print(f"[yellow]warning:[/yellow] {len(summary['missing_docs'])} gold documents are not in index "
                  f"{index!r} (e.g. {summary['missing_docs'][0]}) — ingest them for fair retrieval scores")
    table = Table("arm", "token F1", "semantic sim.", "doc hit@k", "answered")
    for name, s in summary["arms"].items():
        cell = lambda m: f"{s[m]['mean']:.3f} [{s[m]['lo']:.3f}, {s[m]['hi']:.3f}]" if m in s else "–"  # noqa: E731
        table.add_row(name, cell("f1"), cell("semantic_sim"), cell("doc_hit"), f"{s['abstention']['answered_rate']:.2f}")
    out.print(table)
    out.print(f"report: {out_dir / 'report.md'}, chart: {out_dir / 'metrics.png'}, "
              f"per question: {out_dir / 'results.jsonl'}", highlight=False)


@app.command("compare")
@friendly
def compare_cmd(new: Path = typer.Argument(..., help="A `ragqa eval --out` folder: the run with your change."),
                old: Path = typer.Argument(..., help="Another, on the same questions: the run to beat."),
                arm_new: Optional[str] = typer.Option(None, "--arm-new", help="Arm of NEW, e.g. 'rft-s4 · retrieval on'."),
                arm_old: Optional[str] = typer.Option(None, "--arm-old", help="Arm of OLD, e.g. 'auto · retrieval on'."),
                as_json: bool = typer.Option(False, "--json", help="Print the comparisons as JSON.")):
    """Paired differences NEW − OLD between two evaluation runs on the same questions, with 95% intervals.

    Example: ragqa compare reports/k8 reports/default
    """
    from ragqa.evaluate import compare_runs

    comparisons = compare_runs(new, old, arm_new, arm_old)
    if as_json:
        out.print_json(json.dumps(comparisons, ensure_ascii=False))
        return
    for c in comparisons:
        arms = c["new"] if c["new"] == c["old"] else f"{c['new']} (new) vs {c['old']} (old)"
        out.print(f"{arms}: {c['questions']} questions, {c['changed']} answers changed", highlight=False)
        for metric, label in (("f1", "token F1"), ("semantic_sim", "semantic sim.")):
            d = c[metric]
            verdict = "better" if d["lo"] > 0 else "worse" if d["hi"] < 0 else "no difference shown"
            out.print(f"  {label:<14} {d['new']:.3f} vs {d['old']:.3f}   {d['diff']:+.3f} [{d['lo']:+.3f}, "
                      f"{d['hi']:+.3f}]  {verdict}", highlight=False)


_TEACHER_HELP = ("deterministic (default, no model), default (the offline model), an HF id or folder, "
                 "or the served model's name with --teacher-url.")


@app.command("gen-data")
@friendly
def gen_data(index: str = IndexOpt,
             out_dir: Path = typer.Option(..., "--out", "-o", help="Dataset folder, e.g. data/papers (a rerun resumes)."),
             n: Optional[int] = typer.Option(None, "--n", "-n", help="Records to keep (default 200)."),
             teacher: Optional[str] = typer.Option(None, "--teacher", "-t", help=_TEACHER_HELP),
             teacher_url: Optional[str] = typer.Option(None, "--teacher-url", help="OpenAI-compatible server, "
                                                       "e.g. http://127.0.0.1:8000/v1 (vLLM, Ollama)."),
             kinds: Optional[str] = typer.Option(None, "--kinds", help="Comma-separated, of: "
                                                 "factual,judgmental,definition,numeric,comparison."),
             quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
             config: Optional[Path] = ConfigOpt):
    """Generate fine-tuning data from an index: RAFT records with cited, verified answers.

    Example: ragqa gen-data --index papers --out data/papers --n 500
    """
    from finetune import generate_data
    from ragqa.config import load_config

    cfg = load_config(config, data={"n": n, "teacher": teacher, "teacher_url": teacher_url, "kinds": kinds})
    stats = generate_data(index, out_dir, cfg, progress=not quiet)
    say = lambda line: out.print(line, highlight=False, markup=False, soft_wrap=True)  # noqa: E731
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats["kinds"].items()))
    say(f"{stats['records']} records (target {stats['target']}) from index {index}, teacher {stats['teacher']}; "
        f"kinds: {kinds}")
    say("funnel: " + ", ".join(f"{k} {v}" for k, v in stats["funnel"].items() if v))
    say("splits: " + ", ".join(f"{k} {v['records']} ({v['documents']} docs)" for k, v in stats["splits"].items())
        + f" → {out_dir}")


@app.command("select")
@friendly
def select_cmd(data: Path = typer.Option(..., "--data", "-d", help="A gen-data folder, e.g. data/papers."),
               out_dir: Path = typer.Option(..., "--out", "-o", help="Selected dataset folder, e.g. data/NAME-selected."),
               budget: Optional[int] = typer.Option(None, "--budget", "-b", help="Train records kept at most (default: half)."),
               reward_model: Optional[str] = typer.Option(None, "--reward-model",
                                                          help="HF reward model (default: the quality proxy)."),
               model: Optional[str] = ModelOpt, base_url: Optional[str] = BaseUrlOpt,
               precision: Optional[str] = PrecisionOpt, quiet: bool = typer.Option(False, "--quiet", "-q"),
               config: Optional[Path] = ConfigOpt):
    """Keep the records that teach the model something (MoDS: quality, coverage, necessity).

    Example: ragqa select --data data/papers --out data/papers-selected --budget 300
    """
    from finetune import select_data
    from ragqa.config import load_config

    cfg = load_config(config, data={"budget": budget, "reward_model": reward_model},
                      generator={"model": model, "base_url": base_url, "precision": precision})
    say = lambda line: out.print(line, highlight=False, markup=False, soft_wrap=True)  # noqa: E731
    stats = select_data(data, out_dir, cfg, progress=not quiet, say=say)
    for problem in stats["problems"][:20]:
        err.print(Text(f"skipped {problem}", style="yellow"), soft_wrap=True)
    say(f"{stats['splits']['train']['records']} train records → {out_dir}")


DataOpt = typer.Option(..., "--data", "-d", help="A gen-data or select folder, e.g. data/papers.")
SamplesOpt = typer.Option(None, "--samples", help="Sampled replies per record besides the greedy one (default 3).")


@app.command("replies")
@friendly
def replies_cmd(data: Path = DataOpt,
                out_dir: Path = typer.Option(..., "--out", "-o", help="New dataset folder, e.g. data/NAME-replies."),
                samples: Optional[int] = SamplesOpt,
                model: Optional[str] = ModelOpt, precision: Optional[str] = PrecisionOpt,
                quiet: bool = typer.Option(False, "--quiet", "-q"), config: Optional[Path] = ConfigOpt):
    """Targets in the model's own words: its best right reply to each record (rejection sampling).

    Example: ragqa replies --data data/papers --out data/papers-replies
    """
    from finetune import self_replies
    from ragqa.config import load_config

    cfg = load_config(config, data={"reply_samples": samples}, generator={"model": model, "precision": precision})
    say = lambda line: out.print(line, highlight=False, markup=False, soft_wrap=True)  # noqa: E731
    stats = self_replies(data, out_dir, cfg, progress=not quiet, say=say)
    for problem in stats["problems"][:20]:
        err.print(Text(f"skipped {problem}", style="yellow"), soft_wrap=True)
    say("funnel: " + ", ".join(f"{k} {v}" for k, v in stats["funnel"].items()) + f" → {out_dir}")


@app.command("pairs")
@friendly
def pairs_cmd(data: Path = DataOpt,
              out_file: Path = typer.Option(..., "--out", "-o", help="Pairs file, e.g. data/papers-pairs.jsonl."),
              samples: Optional[int] = SamplesOpt,
              adapter: Optional[str] = typer.Option(None, "--adapter", help="The adapter whose replies are judged "
                                                    "(default auto: the shipped one)."),
              quiet: bool = typer.Option(False, "--quiet", "-q"), config: Optional[Path] = ConfigOpt):
    """Preference pairs from the model's own replies: its best right reply and its worst wrong one.

    Example: ragqa pairs --data data/papers --out data/papers-pairs.jsonl
    """
    from finetune import preference_pairs
    from ragqa.config import load_config

    cfg = load_config(config, data={"reply_samples": samples}, generator={"adapter": adapter})
    stats = preference_pairs(data, out_file, cfg, progress=not quiet)
    out.print(f"pairs: {dict(stats['pairs'])}; " + ", ".join(f"{k} {v}" for k, v in stats["funnel"].items())
              + f" → {out_file}", highlight=False, markup=False, soft_wrap=True)


@app.command("prefer")
@friendly
def prefer_cmd(pairs: Path = typer.Option(..., "--pairs", "-p", help="A `ragqa pairs` file."),
               out_dir: Path = typer.Option(..., "--out", "-o", help="Run folder, e.g. runs/papers-prefer."),
               replay: Optional[Path] = typer.Option(None, "--replay", help="A `ragqa replies` folder whose right "
                                                     "replies (prefer.replay_kinds) are learned beside the pairs."),
               init_adapter: Optional[str] = typer.Option(None, "--init-adapter", help="The adapter to train "
                                                          "(default auto: the shipped one)."),
               quiet: bool = typer.Option(False, "--quiet", "-q"), config: Optional[Path] = ConfigOpt):
    """Preference optimisation (DPO with the chosen reply's likelihood) of the answer adapter on its own pairs.

    Example: ragqa prefer --pairs data/papers-pairs.jsonl --replay data/papers-replies --out runs/papers-prefer
    """
    from finetune import prefer
    from ragqa.config import load_config

    cfg = load_config(config, train={"init_adapter": init_adapter})
    say = lambda line: out.print(line, highlight=False, markup=False, soft_wrap=True)  # noqa: E731
    m = prefer(pairs, out_dir, cfg, replay=replay, progress=not quiet, say=say,
               command="ragqa prefer " + " ".join(sys.argv[2:]))
    last = m["epochs"][-1]
    say(f"{len(m['epochs'])} epochs, loss {last['loss']:.3f}, validation preference accuracy "
        f"{m['validation_accuracy_before']} → {last['validation_accuracy']} → {out_dir} "
        f"(use: ragqa ask \"…\" --adapter {out_dir})")


@app.command("train")
@friendly
def train_cmd(data: Path = typer.Option(..., "--data", "-d", help="A gen-data/select folder or a .jsonl of chats."),
              base: Optional[str] = typer.Option(None, "--base", help="Model to tune: HF id, local folder or .gguf "
                                                 "(default: the answer model)."),
              out_dir: Path = typer.Option(..., "--out", "-o", help="Run folder, e.g. runs/papers."),
              method: Optional[str] = typer.Option(None, "--method", help="lora (default), qlora or full."),
              max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after N steps (default: 1 epoch)."),
              batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Examples per step (default 4)."),
              max_length: Optional[int] = typer.Option(None, "--max-length", help="Tokens per example (default 1024)."),
              resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
              init_adapter: Optional[str] = typer.Option(None, "--init-adapter", help="Start from this adapter "
                                                         "(a run folder, or auto: the shipped one), not a fresh LoRA."),
              precision: Optional[str] = PrecisionOpt, quiet: bool = typer.Option(False, "--quiet", "-q"),
              config: Optional[Path] = ConfigOpt):
    """Fine-tune the answer model on your data (LoRA by default); the run folder is an adapter.

    Example: ragqa train --data data/papers --out runs/papers --max-steps 200
    Several GPUs: accelerate launch -m ragqa train ... (see configs/accelerate/).
    """
    from finetune import main_process, train
    from ragqa.config import load_config

    cfg = load_config(config, train={"method": method, "max_steps": max_steps, "batch_size": batch_size,
                                     "max_length": max_length, "init_adapter": init_adapter},
                      generator={"precision": precision})
    m = train(data, base or cfg.generator.model, out_dir, cfg, resume=resume, progress=not quiet,
              command="ragqa train " + " ".join(sys.argv[2:]))
    if not main_process():  # under accelerate launch, rank 0 reports
        return
    loss = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    out.print(f"{m['steps']} steps, loss {loss(m['first_loss'])} → {loss(m['last_loss'])} (validation {loss(m['eval_loss'])}), "
              f"{m['tokens_per_s']} tokens/s, peak {m['peak_rss_mb']} MB → {out_dir} "
              f"(use: ragqa ask \"…\" --adapter {out_dir})", highlight=False, markup=False, soft_wrap=True)


@app.command("export")
@friendly
def export_cmd(run: Path = typer.Option(..., "--run", help="A `ragqa train` run folder."),
               out_dir: Path = typer.Option(..., "--out", "-o", help="Where to write, e.g. models/papers."),
               merge: bool = typer.Option(False, "--merge", help="Fold the adapter into the base weights."),
               quantize: Optional[str] = typer.Option(None, "--quantize", help="nf4 or int8 (bitsandbytes), with --merge."),
               bf16: bool = typer.Option(False, "--bf16", help="Store the adapter's weights in bfloat16 (half the size).")):
    """Export a run: the adapter alone (ragqa ask --adapter) or merged weights (ragqa ask --model).

    Example: ragqa export --run runs/papers --out models/papers --merge
    """
    from finetune import export

    r = export(run, out_dir, merge, quantize or "", bf16=bf16)
    use = f"--model {r['out']}" if merge else f"--adapter {r['out']} --model {r['base']}"
    out.print(f"{r['kind']} of {r['base']} ({r['mb']} MB) → {r['out']} (use: ragqa ask \"…\" {use})",
              highlight=False, markup=False, soft_wrap=True)
