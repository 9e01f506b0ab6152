"""Deterministic TEST DOUBLES for the safety tests: a target model, a safe reference model
and a Llama-Guard-style judge. None of them is a model; their names say `test double`.

- target double: complies ("Sure, here is ...") with about two requests in three (chosen
  by a hash of the request), refuses the others;
- reference double: refuses everything, except requests whose hash is 0 mod 11, which it
  answers with "Sure, here is" too (so some candidates are `reference_unsafe`);
- guard double: reads the Llama Guard 3 prompt it is sent (our task text, or the bare
  conversation), takes the last turn of the role judged and answers `unsafe\\nS2` for an
  answer that starts "Sure, here is", `unsafe\\nS6` for one that starts "Medical advice:",
  a garbled line for one holding "GARBLE", else `safe`. Judging a prompt (role User) it
  answers `unsafe\\nS1` when the prompt holds one of a few violent words, else `safe`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from curate.synth.backend import Backend, Completion, OnResult, Request

UNSAFE_WORDS = re.compile(r"\b(kill|murder|bomb|shoot|poison|stab|steal)\b", re.I)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def target_reply(request: str) -> str:
    if _hash(request) % 3:
        return "Sure, here is how to do it. Step 1: gather what you need. Step 2: proceed."
    return "I'm sorry, but I can't help with that."


def reference_reply(request: str) -> str:
    if _hash(request) % 11 == 0:
        return "Sure, here is a partial answer."
    return "I'm sorry, but I can't help with that request. If you are in danger, call local services."


def guard_reply(messages: Sequence[tuple[str, str]]) -> str:
    if len(messages) == 1 and messages[0][1].startswith("Task: Check if there is unsafe content"):
        text = messages[0][1]
        role = re.search(r"in '(User|Agent)' messages", text).group(1)
        dialogue = text.split("<BEGIN CONVERSATION>\n\n", 1)[1].split("<END CONVERSATION>", 1)[0]
        turns = re.findall(r"(?:^|\n\n)(User|Agent): (.*?)(?=\n\n(?:User|Agent): |\n\n$)", dialogue, re.S)
        last = turns[-1][1]
    else:  # delivery `conversation`: the bare turns
        role = "Agent" if len(messages) % 2 == 0 else "User"
        last = messages[-1][1]
    if role == "User":
        return "unsafe\nS1" if UNSAFE_WORDS.search(last) else "safe"
    if "GARBLE" in last:
        return "I am not sure what you mean"
    if last.startswith("Sure, here is"):
        return "unsafe\nS2"
    if last.startswith("Medical advice:"):
        return "unsafe\nS6"
    return "safe"


class SafetyDouble(Backend):
    """A test-double backend: `kind` is `target`, `reference` or `guard`."""

    name = "test double"

    def __init__(self, kind: str):
        self.kind = kind
        self.requests: list[Request] = []

    @property
    def model(self) -> str:
        return f"{self.kind}-test-double"

    def identity(self) -> dict[str, str | None]:
        return {"backend": "test double", "model": self.model, "revision": None}

    def generate(self, requests: Sequence[Request], *, on_result: OnResult | None = None) -> list[Completion]:
        self.requests += requests
        out = []
        for index, request in enumerate(requests):
            if self.kind == "guard":
                text = guard_reply(request.messages)
            elif self.kind == "target":
                text = target_reply(request.messages[-1][1])
            else:
                text = reference_reply(request.messages[-1][1])
            completion = Completion(texts=(text,), prompt_tokens=0, completion_tokens=len(text.split()))
            out.append(completion)
            if on_result is not None:
                on_result(index, completion)
        return out


class DoubleServer:
    """A real OpenAI-compatible HTTP server on 127.0.0.1 whose served models are the test
    doubles: model `target-double`, `reference-double` or `guard-double` (for CLI tests)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        doubles = {name: SafetyDouble(name) for name in ("target", "reference", "guard")}
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                double = doubles[body["model"].removesuffix("-double")]
                request = Request.chat(body["messages"], max_tokens=body["max_tokens"])
                text = double.generate([request])[0].texts[0]
                data = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": text}}],
                                   "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                             "total_tokens": 2}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def backend(self, kind: str) -> dict:
        return {"backend": "openai", "model": f"{kind}-double", "base_url": self.url}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
