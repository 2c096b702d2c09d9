"""Load on the chat: N concurrent clients (gradio_client) each asking Q questions.

    python bench/ui_load.py [--clients 20] [--questions 5] [--max-new-tokens 32]

Starts `ragqa serve` machinery in-process on a free loopback port with the real default model
over the bundled user guide, then runs the clients in threads. Reports errors (target: 0),
p50/p95 latency per answer and throughput. Writes bench/results/ui_load.json.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from _common import ROOT, table, write_result

QUESTIONS = ["What happens if ingestion is interrupted?", "Which file types can be ingested?",
             "How are running headers removed?", "What does ragqa do with an encrypted PDF?",
             "Is the same content stored twice when it has two paths?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _text(content) -> str:
    """Gradio 6 sends message content as a list of typed parts."""
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content or "")


def client(url: str, n: int, offset: int) -> list[tuple[float, str | None]]:
    from gradio_client import Client

    c, out = Client(url, verbose=False), []
    for i in range(n):
        q = QUESTIONS[(offset + i) % len(QUESTIONS)]
        start = time.perf_counter()
        try:
            # gr.State is not part of the API: inputs are message, chat, index, retrieval, k, model
            chat, *_ = c.predict(q, [], "bench-ui", True, 3, "base model", api_name="/respond")
            text = _text(chat[-1]["content"]) if chat else ""
            error = None if text and not text.startswith("Error: ") else f"bad answer: {text[:80]!r}"
        except Exception as exc:  # counted, not raised: the point is to see every failure
            error = f"{exc.__class__.__name__}: {exc}"[:200]
        out.append((time.perf_counter() - start, error))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--questions", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    args = ap.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ingest import ingest
    from ragqa.config import load_config
    from ui import ChatBackend, build_app

    ingest([ROOT / "ragqa" / "guide"], index="bench-ui", progress=False)
    config = load_config(generator={"max_new_tokens": args.max_new_tokens})
    backend = ChatBackend(config)
    backend.generator("base model")  # load before the clock starts
    port = free_port()
    app = build_app(backend, "bench-ui")
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        results = [r for rs in pool.map(lambda i: client(url, args.questions, i), range(args.clients)) for r in rs]
    wall = time.perf_counter() - start
    app.close()
    latencies = sorted(t for t, _ in results)
    errors = [e for _, e in results if e]
    row = {"clients": args.clients, "questions_each": args.questions, "answers": len(results),
           "errors": len(errors), "p50_s": round(statistics.median(latencies), 2),
           "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 2), "wall_s": round(wall, 1),
           "answers_per_min": round(60 * len(results) / wall, 1), "max_new_tokens": args.max_new_tokens}
    table([row])
    write_result("ui_load", {**row, "error_samples": errors[:5]})


if __name__ == "__main__":
    main()
