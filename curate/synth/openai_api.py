"""The ``openai`` backend: any OpenAI-compatible ``/chat/completions`` endpoint.

Requests run on a thread pool of ``concurrency`` workers sharing one httpx client (the
work is waiting on the network, so threads are enough). Each request is retried after a
429, a 5xx, a timeout or a connection error, up to ``max_retries`` times: the delay is
the server's ``Retry-After`` when it sends one, else ``backoff * 2**retry`` (capped at
``max_backoff``) times a random factor in [0.5, 1). Other 4xx replies and malformed
bodies fail at once with an error naming the request and what was wrong.

The API key is read from the environment variable named by ``api_key_env`` when the
client is built, and only ever goes into the ``Authorization`` header: it is in no
error, log line, cache key or manifest.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from curate.synth.backend import Backend, BackendError, Completion, OnResult, Request
from curate.synth.config import OpenAIOptions

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)


class OpenAIBackend(Backend):
    """Any OpenAI-compatible chat endpoint, with bounded concurrency and retries."""
    name = "openai"
    options_class = OpenAIOptions
    options: OpenAIOptions

    def __init__(self, options: OpenAIOptions):
        self.options = options
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._random = random.Random()
        self.retries = 0
        """Retries made so far (all requests, all calls): for tests and benchmarks."""

    @property
    def url(self) -> str:
        """The chat completions URL of the endpoint."""
        return self.options.base_url.rstrip("/") + "/chat/completions"

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx
            headers = {"Content-Type": "application/json"}
            key = os.environ.get(self.options.api_key_env)
            if key:
                headers["Authorization"] = f"Bearer {key}"
            limit = self.options.concurrency
            self._client = httpx.Client(
                headers=headers, timeout=self.options.timeout,
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            )
        return self._client

    @override
    def teardown(self) -> None:
        """Close the HTTP client (its connections); the next ``generate`` opens another."""
        if self._client is not None:
            self._client.close()
            self._client = None

    @override
    def generate(self, requests: Sequence[Request], *,
                 on_result: OnResult | None = None) -> list[Completion]:
        if not requests:
            return []
        client = self._http()
        results: list[Completion | None] = [None] * len(requests)
        error: BackendError | None = None
        with ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="curate-openai") as pool:
            futures = {pool.submit(self._complete, client, i, len(requests), r): i
                       for i, r in enumerate(requests)}
            for future in as_completed(futures):
                try:
                    completion = future.result()
                except CancelledError:
                    continue
                except BackendError as exc:
                    if error is None:  # stop starting new requests; let running ones land
                        error = exc
                        for other in futures:
                            other.cancel()
                    continue
                index = futures[future]
                results[index] = completion
                if on_result is not None:
                    on_result(index, completion)
        if error is not None:
            raise error
        return [r for r in results if r is not None]

    def body(self, request: Request) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        body: dict[str, Any] = {
            "model": self.options.model,
            "messages": request.message_dicts(),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "n": request.n,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.choices:
            if not self.options.structured_outputs_field:
                raise BackendError("a request constrains its answer to `choices`, but "
                                   "`structured_outputs_field` is off for this endpoint")
            body["structured_outputs"] = {"choice": list(request.choices)}
        return body

    def _complete(self, client: httpx.Client, index: int, total: int, request: Request) -> Completion:
        import httpx

        options = self.options
        what = _describe(index, total, request)
        body = self.body(request)
        retry = 0
        while True:
            delay: float | None = None
            try:
                reply = client.post(self.url, json=body)
            except httpx.TimeoutException:
                problem = f"no reply within {options.timeout:g} s (`timeout`)"
            except httpx.TransportError as exc:
                problem = f"connection error ({type(exc).__name__}) to {self.url}"
            else:
                status = reply.status_code
                if status == 429 or status >= 500:
                    problem = f"HTTP {status}: {_snippet(reply.text)}"
                    delay = _retry_after(reply.headers.get("retry-after"))
                elif status in (401, 403):
                    raise BackendError(
                        f"{what}: HTTP {status} from {self.url}: the endpoint refused the API key; "
                        f"set the environment variable `{options.api_key_env}` (option `api_key_env`)")
                elif status >= 400:
                    raise BackendError(f"{what}: HTTP {status} from {self.url}: {_snippet(reply.text)}")
                else:
                    return _parse(reply.text, request, what)
            if retry == options.max_retries:
                raise BackendError(f"{what}: gave up after {retry + 1} attempt(s) "
                                   f"(`max_retries` = {options.max_retries}); last: {problem}")
            if delay is None:
                with self._lock:
                    jitter = 0.5 + self._random.random() / 2
                delay = min(options.max_backoff, options.backoff * 2**retry) * jitter
            with self._lock:
                self.retries += 1
            log.info("%s: %s; retrying in %.2f s", what, problem, delay)
            time.sleep(delay)
            retry += 1


def _describe(index: int, total: int, request: Request) -> str:
    last = request.messages[-1][1] if request.messages else ""
    words = " ".join(last.split()[:8])
    return f"request {index + 1} of {total} (seed {request.seed}, {words!r}...)"


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _parse(text: str, request: Request, what: str) -> Completion:
    """A completion from a reply body; a BackendError saying what is missing otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise BackendError(f"{what}: the reply is not JSON: {_snippet(text)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise BackendError(f"{what}: the reply has no `choices` list: {_snippet(text)}")
    choices = sorted(data["choices"], key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    if len(choices) != request.n:
        raise BackendError(f"{what}: the reply has {len(choices)} choice(s), expected n={request.n}")
    texts, reasons = [], []
    for i, choice in enumerate(choices):
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise BackendError(f"{what}: the reply's `choices[{i}].message.content` is missing "
                               f"or not a string: {_snippet(text)}")
        texts.append(content)
        reasons.append(str(choice.get("finish_reason")))
    usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
    return Completion(
        texts=tuple(texts),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reasons=tuple(reasons),
    )
