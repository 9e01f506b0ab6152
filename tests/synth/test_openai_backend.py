"""The `openai` backend against a real HTTP server on 127.0.0.1 (see fake_openai.FakeOpenAI)."""

from __future__ import annotations

import json
import re
import time

import pytest
from fake_openai import Reply, make_mcqa, server  # noqa: F401 (fixtures)

from curate.errors import ConfigError
from curate.synth.backend import BackendError, Request, make_backend
from curate.synth.config import SynthCotConfig
from curate.synth.cot import enhance


def ask(text: str = "What is the capital of France?", **fields) -> Request:
    return Request.chat([{"role": "user", "content": text}], max_tokens=32, **fields)


def backend(server, **options):
    defaults = {"model": "tiny", "base_url": server.url, "backoff": 0.01, "max_backoff": 0.05}
    return make_backend("openai", **{**defaults, **options})


def test_body_carries_n_seed_stop_and_max_tokens(server):
    with backend(server) as b:
        [completion] = b.generate([ask(n=2, seed=7, temperature=0.5, stop=("###",))])
    body = server.bodies[0]
    assert body["n"] == 2 and body["seed"] == 7 and body["max_tokens"] == 32
    assert body["temperature"] == 0.5 and body["stop"] == ["###"] and body["model"] == "tiny"
    assert "structured_outputs" not in body
    assert len(completion.texts) == 2 and completion.completion_tokens > 0
    assert completion.prompt_tokens == 6


def test_choices_go_in_vllm_structured_outputs_field(server):
    with backend(server) as b:
        [completion] = b.generate([ask(choices=("A", "B"))])
    assert server.bodies[0]["structured_outputs"] == {"choice": ["A", "B"]}
    assert completion.texts[0] in ("A", "B")


def test_429_then_success_honours_retry_after(server):
    server.script.append(Reply(status=429, headers={"Retry-After": "0.4"}, body='{"error": "slow down"}'))
    with backend(server, backoff=0.0) as b:
        started = time.monotonic()
        [completion] = b.generate([ask()])
    assert server.count == 2 and b.retries == 1
    assert server.times[1] - server.times[0] >= 0.4  # the server's delay, not the 0 s backoff
    assert time.monotonic() - started < 2
    assert completion.texts[0]


def test_500_is_retried_then_fails_naming_the_request(server):
    for _ in range(3):
        server.script.append(Reply(status=500, body="internal error"))
    with backend(server, max_retries=2) as b, pytest.raises(BackendError, match="gave up after 3") as error:
        b.generate([ask("Which nerve supplies the diaphragm?", seed=3)])
    message = str(error.value)
    assert server.count == 3 and b.retries == 2
    assert "request 1 of 1" in message and "seed 3" in message and "Which nerve" in message
    assert "gave up after 3 attempt(s)" in message and "HTTP 500: internal error" in message


def test_a_5xx_then_success_is_invisible(server):
    server.script.extend([Reply(status=503), Reply(status=502)])
    with backend(server) as b:
        [completion] = b.generate([ask()])
    assert server.count == 3 and b.retries == 2 and completion.texts[0]


def test_timeout_is_a_clear_error(server):
    server.script.append(Reply(sleep=2.0))
    with backend(server, timeout=0.2, max_retries=0) as b, \
            pytest.raises(BackendError, match=r"no reply within 0\.2 s") as error:
        started = time.monotonic()
        b.generate([ask()])
    assert time.monotonic() - started < 1.5
    assert "no reply within 0.2 s (`timeout`)" in str(error.value)


@pytest.mark.parametrize(("body", "says"), [
    ("this is not json", "the reply is not JSON: this is not json"),
    ('{"object": "error"}', "the reply has no `choices` list"),
    ('{"choices": [{"index": 0, "message": {"role": "assistant"}}]}',
     "`choices[0].message.content` is missing"),
    ('{"choices": []}', "the reply has 0 choice(s), expected n=1"),
])
def test_malformed_body_is_a_clear_error_without_retry(server, body, says):
    server.script.append(Reply(body=body))
    with backend(server) as b, pytest.raises(BackendError, match=re.escape(says)) as error:
        b.generate([ask()])
    assert says in str(error.value) and "request 1 of 1" in str(error.value)
    assert server.count == 1


def test_concurrency_bound_is_respected(server):
    server.delay = 0.1
    with backend(server, concurrency=4) as b:
        started = time.monotonic()
        completions = b.generate([ask(f"question {i}?", seed=i) for i in range(20)])
    assert len(completions) == 20 and server.count == 20
    assert 2 <= server.max_in_flight <= 4  # bounded, and overlapping (a loaded machine may not fill all 4)
    assert time.monotonic() - started < 20 * 0.1 * 0.75


def test_results_come_back_in_request_order(server):
    with backend(server, concurrency=8) as b:
        seen: list[int] = []
        completions = b.generate([ask(f"question number {i}?", seed=i) for i in range(12)],
                                 on_result=lambda i, c: seen.append(i))
    assert sorted(seen) == list(range(12))
    assert [c.texts[0] for c in completions] == [
        server.answer(b.body(ask(f"question number {i}?", seed=i)))["choices"][0]["message"]["content"]
        for i in range(12)]


def test_the_api_key_is_sent_and_never_written(server, monkeypatch, tmp_path, make_mcqa):
    monkeypatch.setenv("CURATE_TEST_KEY", "sk-very-secret")
    server.script.append(Reply(status=500, body="boom"))
    config = SynthCotConfig(generator={"backend": "openai", "model": "tiny", "base_url": server.url,
                                       "api_key_env": "CURATE_TEST_KEY", "backoff": 0.0})
    synthetic, _, stats = enhance(make_mcqa(3), config, tmp_path / "cache")
    assert server.headers[0]["Authorization"] == "Bearer sk-very-secret"
    written = b"".join(p.read_bytes() for p in (tmp_path / "cache").iterdir())
    assert b"sk-very-secret" not in written
    assert "sk-very-secret" not in json.dumps(stats) + str(synthetic.to_pylist())
    server.script.extend([Reply(status=500, body="boom")] * 2)
    with backend(server, api_key_env="CURATE_TEST_KEY", max_retries=1) as b, \
            pytest.raises(BackendError, match="gave up after 2") as error:
        b.generate([ask()])
    assert "sk-very-secret" not in str(error.value)


def test_a_refused_key_names_the_variable(server):
    server.script.append(Reply(status=401, body='{"error": "bad key"}'))
    with backend(server, api_key_env="MY_ENDPOINT_KEY") as b, \
            pytest.raises(BackendError, match="`MY_ENDPOINT_KEY`") as error:
        b.generate([ask()])
    assert "`MY_ENDPOINT_KEY`" in str(error.value) and server.count == 1


def test_options_are_strict():
    with pytest.raises(ConfigError, match="unknown option `concurency`; did you mean `concurrency`"):
        make_backend("openai", model="m", base_url="http://127.0.0.1:1/v1", concurency=4)
    with pytest.raises(ConfigError, match="unknown backend `opneai`.*did you mean `openai`"):
        make_backend("opneai", model="m")
    with pytest.raises(ConfigError, match="`base_url`: Field required"):
        make_backend("openai", model="m")
