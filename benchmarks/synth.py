"""Synthetic CoT generation: curate's `openai` backend against the `openai` SDK's
AsyncOpenAI client at the same concurrency, and the tokens a CoT run generates per row.

The peer: ``openai.AsyncOpenAI`` (the official SDK, as its README shows for concurrent
requests: one client, ``asyncio.gather`` of ``chat.completions.create`` calls, bounded by
an ``asyncio.Semaphore`` of the same size as curate's ``concurrency``), sending the same
requests (messages, max_tokens, seed) to the same server. Both clients are built outside
the timing, send one untimed warm-up round of ``concurrency`` requests (connections open),
and are closed after it.

The endpoint is a FIXED-LATENCY RESPONDER started here on 127.0.0.1 (no model: every
reply waits --latency seconds, then returns the offline backend's template text), so
the figures measure each client's concurrency and overhead against a latency-bound
server, not a model. The CoT run enhances the first --rows MedMCQA dev questions through
that same server (concurrency 16), with the gold answer given and withheld.

    .venv/bin/python benchmarks/synth.py --latency 0.2 --rows 200   # about 40 s
    .venv/bin/python benchmarks/synth.py --smoke     # 32 requests at 20 ms, seconds (the test suite's size)

Without the openai SDK (the bench extra) the peer is skipped, said so, and curate runs alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import add_clean, announce, finish, installed, parse_args

HERE = Path(__file__).resolve().parent


def start_responder(latency: float) -> tuple[ThreadingHTTPServer, str]:
    """A /v1/chat/completions server on 127.0.0.1 that answers after ``latency`` seconds."""
    from curate.synth.backend import Request
    from curate.synth.offline import OfflineBackend

    offline = OfflineBackend()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # one small reply must not wait for a delayed ACK

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(latency)
            request = Request.chat(body["messages"], max_tokens=body["max_tokens"], n=body.get("n", 1),
                                   temperature=body.get("temperature", 0.0), seed=body.get("seed"))
            completion = offline.generate([request])[0]
            data = json.dumps({
                "choices": [{"index": i, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": t}}
                            for i, t in enumerate(completion.texts)],
                "usage": {"prompt_tokens": completion.prompt_tokens,
                          "completion_tokens": completion.completion_tokens},
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def throughput(url: str, concurrency: int, count: int) -> float:
    """Requests per second for ``count`` distinct requests at ``concurrency`` through curate."""
    from curate.synth.backend import Request, make_backend

    requests = [Request.chat([{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}],
                             max_tokens=64, seed=i, temperature=0.0) for i in range(count)]
    with make_backend("openai", model="fixed-latency", base_url=url, concurrency=concurrency) as backend:
        backend.generate([Request.chat([{"role": "user", "content": f"warm-up {i}"}], max_tokens=64, seed=i)
                          for i in range(concurrency)])  # open the connections, untimed (as for the SDK)
        started = time.perf_counter()
        backend.generate(requests)
        return count / (time.perf_counter() - started)


def sdk_throughput(url: str, concurrency: int, count: int) -> float:
    """Requests per second for the same requests through ``openai.AsyncOpenAI``."""
    from openai import AsyncOpenAI

    async def run() -> float:
        client = AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)
        limit = asyncio.Semaphore(concurrency)

        async def one(i: int) -> str:
            async with limit:
                reply = await client.chat.completions.create(
                    model="fixed-latency", max_tokens=64, seed=i, temperature=0.0,
                    messages=[{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}])
                return reply.choices[0].message.content or ""

        await asyncio.gather(*(one(-1 - i) for i in range(concurrency)))  # warm-up, untimed
        started = time.perf_counter()
        texts = await asyncio.gather(*(one(i) for i in range(count)))
        seconds = time.perf_counter() - started
        await client.close()
        assert all(texts), "the SDK got an empty reply"
        return count / seconds

    return asyncio.run(run())


def cot_run(url: str, data_root: Path, rows: int, gold: str) -> dict[str, Any]:
    from curate.catalog import Catalog
    from curate.read.sources import read_file
    from curate.synth.config import SynthCotConfig
    from curate.synth.cot import enhance

    lines = (data_root / "benchmarks/medmcqa/medmcqa_dev_full.jsonl").read_text("utf-8").splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "medmcqa.jsonl"
        path.write_text("\n".join(lines[:rows]) + "\n", "utf-8")
        records = read_file(path, source="medmcqa", catalog=Catalog.load(), data_root=data_root).records
        config = SynthCotConfig(generator={"backend": "openai", "model": "fixed-latency",
                                           "base_url": url, "concurrency": 16}, gold_answer=gold)
        started = time.perf_counter()
        result = enhance(records, config, Path(tmp) / "cache")
        result.stats["seconds"] = time.perf_counter() - started
        return result.stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the responder waits per reply")
    parser.add_argument("--requests", type=int, default=160,
                        help="requests at --concurrency, for curate and for the SDK")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight, both clients")
    parser.add_argument("--rows", type=int, default=200, help="MedMCQA dev rows for the CoT run")
    parser.add_argument("--data-root", type=Path, default=HERE.parent.parent / "shared" / "data",
                        help="the shared data folder (MedMCQA dev questions)")
    add_clean(parser)
    args = parse_args(parser, {"latency": 0.02, "requests": 32, "rows": 4})
    single_count = max(5, args.requests // 8)
    waits = (2 * args.requests / args.concurrency + single_count + 2 * 2 * args.rows / 16) * args.latency
    started = announce("synth.py", 10 + 1.5 * waits, f"{args.requests} requests at concurrency "
                       f"{args.concurrency}, {args.rows} CoT rows, {args.latency * 1000:.0f} ms per reply")

    server, url = start_responder(args.latency)
    try:
        print(f"server: fixed-latency responder on 127.0.0.1, {args.latency * 1000:.0f} ms per "
              "request, offline template text (no model)")
        ours = throughput(url, args.concurrency, args.requests)
        peer = installed("openai", "the openai SDK's AsyncOpenAI")
        sdk = sdk_throughput(url, args.concurrency, args.requests) if peer else None
        single = throughput(url, 1, single_count)
        ideal = args.concurrency / args.latency
        print(f"curate openai backend, concurrency {args.concurrency:>2}: {ours:7.2f} requests/s "
              f"({ours / ideal:.0%} of the {ideal:.0f}/s the latency allows)")
        if sdk is not None:
            import openai

            print(f"peer openai {openai.__version__} AsyncOpenAI + Semaphore({args.concurrency}), "
                  f"max_retries=0: {sdk:7.2f} requests/s")
            print(f"ratio curate / SDK at concurrency {args.concurrency}: {ours / sdk:.2f}x (1.0 = same)")
        print(f"curate openai backend, concurrency  1: {single:7.2f} requests/s; concurrency "
              f"{args.concurrency} runs at {ours / single:.1f}x that (a property of the server's "
              "latency, not a comparison with a peer)")
        for gold in ("given", "withheld"):
            stats = cot_run(url, args.data_root, args.rows, gold)
            print(f"CoT run, {stats['rows']} MedMCQA dev rows, gold {gold}, through the responder "
                  f"(concurrency 16, offline template text): {stats['synthetic']} kept, "
                  f"rejected {stats['rejected']}, attempts {stats['attempts']}, "
                  f"{stats['requests']['sent']} requests in {stats['seconds']:.1f} s, "
                  f"{stats['completion_tokens_per_row']:.1f} completion tokens per source row "
                  "(whitespace words of the template; a real model's count differs)")
    finally:
        server.shutdown()
    finish(started, [], args.clean)  # scratch: temporary folders only, removed as it goes


if __name__ == "__main__":
    main()
