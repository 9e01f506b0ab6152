"""A real OpenAI-compatible HTTP server on 127.0.0.1 for the synth tests, and small inputs.

Test modules import the fixtures they use from here (a conftest.py in this folder would
shadow tests/conftest.py for the modules that import helpers from it).

The server answers ``POST /v1/chat/completions`` with what the offline backend writes
for the request (so chains of thought verify), and can be scripted: the next replies
can be an HTTP status with headers, a sleep, or a raw body. It records every request
body and header, and the most requests it ever had in flight.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pytest

from curate.catalog import resolve_data_root
from curate.records import SCHEMA, record_id
from curate.synth.backend import Request
from curate.synth.offline import OfflineBackend

MEDMCQA = resolve_data_root() / "benchmarks/medmcqa/medmcqa_dev_full.jsonl"


@dataclass
class Reply:
    """One scripted reply: a status (with headers and body), or a delay before the normal one."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    sleep: float = 0.0


class FakeOpenAI:
    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.kill_pid: int | None = None
        self.kill_at: int | None = None
        self.lock = threading.Lock()
        self.offline = OfflineBackend()
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                server.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *args: None  # a client that timed out closed its socket
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def count(self) -> int:
        return len(self.bodies)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        body = json.loads(handler.rfile.read(length))
        with self.lock:
            self.bodies.append(body)
            self.headers.append(dict(handler.headers))
            self.times.append(time.monotonic())
            number = len(self.bodies)
            reply = self.script.popleft() if self.script else Reply()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            kill = self.kill_pid if self.kill_at is not None and number >= self.kill_at else None
        counted = False
        try:
            if kill is not None:
                os.kill(kill, signal.SIGKILL)
                self.kill_pid = None
                return
            time.sleep(reply.sleep or self.delay)
            if reply.body is None and reply.status == 200:
                reply.body = json.dumps(self.answer(body))
            data = (reply.body or "").encode()
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            # no longer in flight before the body goes out: the client may send its next
            # request the moment it has read this one, before this thread runs again
            with self.lock:
                self.in_flight -= 1
                counted = True
            handler.wfile.write(data)
        finally:
            if not counted:
                with self.lock:
                    self.in_flight -= 1

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        request = Request.chat(body["messages"], max_tokens=body["max_tokens"], n=body.get("n", 1),
                               temperature=body.get("temperature", 0.0), seed=body.get("seed"),
                               choices=tuple(body.get("structured_outputs", {}).get("choice", ())))
        completion = self.offline.generate([request])[0]
        return chat_completion(completion.texts, model=body["model"], prompt_tokens=completion.prompt_tokens,
                               completion_tokens=completion.completion_tokens, id="chatcmpl-test")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_completion(texts: list[str], *, model: str, prompt_tokens: int = 1, completion_tokens: int = 1,
                    id: str = "x") -> dict[str, Any]:
    """An OpenAI chat-completion body with one choice per text."""
    return {
        "id": id, "object": "chat.completion", "model": model,
        "choices": [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                    for i, text in enumerate(texts)],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.close()


def mcqa_records(count: int, *, source: str = "medmcqa") -> pa.Table:
    """The first ``count`` MedMCQA dev questions as records (as ingestion makes them)."""
    rows = []
    with MEDMCQA.open(encoding="utf-8") as lines:
        for row, line in zip(range(count), lines):
            item = json.loads(line)
            options = [o.split(". ", 1)[1] for o in item["choices"]]
            answer = int(item["answer"])
            listing = "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))
            record = {
                "source": source, "source_version": "1", "row": row, "kind": "mcqa",
                "messages": [{"role": "user", "content": f"{item['question']}\n{listing}"},
                             {"role": "assistant", "content": f"{chr(65 + answer)}. {options[answer]}"}],
                "chosen": None, "rejected": None, "images": None,
                "mcqa": {"question": item["question"], "options": options, "answer": answer},
                "domain": "medical", "origin": "real", "task": "mcqa", "license": "MIT", "meta": None,
            }
            rows.append({"id": record_id(record), **record})
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def chat_record(question: str, answer: str | None, *, row: int = 0, source: str = "qa") -> dict[str, Any]:
    messages = [{"role": "user", "content": question}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    record = {"source": source, "source_version": "1", "row": row, "kind": "chat",
              "messages": messages, "chosen": None, "rejected": None, "images": None, "mcqa": None,
              "domain": "medical", "origin": "real", "task": "qa", "license": "CC-BY-4.0",
              "meta": None}
    return {"id": record_id(record), **record}


@pytest.fixture
def make_mcqa():
    return mcqa_records


@pytest.fixture
def make_chat():
    return chat_record
