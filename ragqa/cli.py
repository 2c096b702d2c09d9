"""The ``ragqa`` command: thin front doors to ingest(), search and index management."""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from ragqa.errors import RagqaError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Ask questions about your research papers and technical blog posts, locally.")
index_app = typer.Typer(no_args_is_help=True, help="List, inspect and remove indexes.")
app.add_typer(index_app, name="index")
out, err = Console(), Console(stderr=True)

IndexOpt = typer.Option("default", "--index", "-i", help="Index name (a folder under $RAGQA_HOME/indexes).")
ConfigOpt = typer.Option(None, "--config", "-c", help="TOML config file (default: $RAGQA_HOME/ragqa.toml).")


def friendly(fn):
    """Turn a RagqaError into one red line and exit code 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RagqaError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    return wrapper


@app.command()
@friendly
def ingest(paths: List[Path] = typer.Argument(..., help="PDF/Markdown/HTML/text files or folders."),
           index: str = IndexOpt, config: Optional[Path] = ConfigOpt,
           pdf_parser: Optional[str] = typer.Option(None, help="'pypdfium2' (default) or 'pypdf'."),
           embedder: Optional[str] = typer.Option(None, help="sentence-transformers name or path."),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars.")):
    """Add papers and blog posts to an index (unchanged files are skipped).

    Example: ragqa ingest ~/papers notes/blog.md --index papers
    """
    from ingest import ingest as run_ingest
    from ragqa.config import load_config

    cfg = load_config(config, ingest={"pdf_parser": pdf_parser}, embedder={"model": embedder})
    report = run_ingest(paths, index=index, config=cfg, progress=not quiet)
    for problem in report.skipped:
        err.print(f"[yellow]skipped[/yellow] {problem}", highlight=False, soft_wrap=True)
    secs = sum(report.seconds.values())
    out.print(f"index [bold]{index}[/bold]: {len(report.added)} added, {len(report.unchanged)} unchanged, "
              f"{len(report.aliased)} duplicate content, {len(report.skipped)} skipped; "
              f"{report.chunks_added} chunks embedded, {report.chunks_removed} removed, "
              f"{report.chunks_total} in index ({secs:.1f} s)")
    if not report.ok:
        err.print("[red]error:[/red] nothing was ingested — fix the files listed above and run again")
        raise typer.Exit(1)


@app.command()
@friendly
def search(query: str = typer.Argument(..., help="What to look for."),
           k: int = typer.Option(5, "-k", help="Number of results."), index: str = IndexOpt,
           doc: Optional[str] = typer.Option(None, "--doc", "-d", help="Only this document (file name, title or id)."),
           mode: Optional[str] = typer.Option(None, help="hybrid (default), dense or bm25."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
           config: Optional[Path] = ConfigOpt):
    """Find the passages that best match a query.

    Example: ragqa search "two pre-training tasks of BERT" -k 3 --index papers
    """
    from ragqa.config import load_config
    from retrieval import open_retriever

    cfg = load_config(config, retrieval={"mode": mode, "k": k})
    hits = open_retriever(index, cfg).search(query, k=k, doc=doc)
    if as_json:
        for h in hits:
            out.print_json(json.dumps({"score": h.score, "dense": h.dense, "bm25": h.bm25, **vars(h.chunk)}))
        return
    if not hits:
        out.print("no results")
    for n, h in enumerate(hits, 1):
        pages = f"p. {h.chunk.page}" + (f"-{h.chunk.page_end}" if h.chunk.page_end != h.chunk.page else "")
        out.print(f"[bold][{n}][/bold] {h.score:.4f}  {Path(h.chunk.path).name}, {pages}"
                  f"{' — ' + h.chunk.section if h.chunk.section else ''}", highlight=False)
        out.print(f"    {h.snippet()}", highlight=False, soft_wrap=True)


@index_app.command("list")
@friendly
def index_list():
    """List the indexes under $RAGQA_HOME/indexes."""
    from retrieval.store import IndexStore, list_indexes

    table = Table("index", "documents", "chunks", "embedder")
    for name in list_indexes():
        m = IndexStore.open(name).manifest
        table.add_row(name, str(len(m.docs)), str(sum(len(d["chunk_ids"]) for d in m.docs.values())), m.embedder)
    out.print(table)


@index_app.command("stats")
@friendly
def index_stats(index: str = IndexOpt):
    """Documents, pages and chunks of one index."""
    from retrieval.store import IndexStore

    store = IndexStore.open(index)
    m = store.manifest
    out.print(f"index {index}: {len(m.docs)} documents, {len(store.chunks)} chunks, embedder {m.embedder} "
              f"(dim {m.dim}), faiss {m.faiss}, chunking {m.chunking}", highlight=False)
    table = Table("doc id", "title", "kind", "pages", "chunks", "file(s)")
    for doc_id, d in sorted(m.docs.items(), key=lambda kv: kv[1]["title"].lower()):
        table.add_row(doc_id, d["title"][:60], d["kind"], str(d["pages"]), str(len(d["chunk_ids"])),
                      "\n".join(os.path.relpath(p) for p in d["paths"]))
    out.print(table)


@index_app.command("remove")
@friendly
def index_remove(index: str = IndexOpt,
                 doc: Optional[str] = typer.Option(None, "--doc", "-d", help="Remove only this document."),
                 yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")):
    """Remove one document from an index, or the whole index."""
    from retrieval.store import remove_document, remove_index

    what = f"document {doc!r} from index {index!r}" if doc else f"index {index!r}"
    if not yes and not typer.confirm(f"remove {what}?"):
        raise typer.Exit(1)
    remove_document(index, doc) if doc else remove_index(index)
    out.print(f"removed {what}")
