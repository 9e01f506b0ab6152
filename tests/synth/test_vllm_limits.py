"""vLLM's limits on the generation side, and engines closed between the steps of one build,
checked against a test double of `vllm.LLM` (no GPU here; see tests/vllm_double.py)."""

from __future__ import annotations

import types

import pytest
from tiny_lm import build_tiny_lm
from vllm_double import install_vllm_double, write_chat_source

from curate.config import validate_model
from curate.curation.quality import Quality, QualityConfig
from curate.engine.runner import run_producer, run_stages
from curate.engine.stage import StageContext
from curate.errors import ConfigError
from curate.models import close_vllm
from curate.read.runs import RunReader
from curate.store import RunStore
from curate.synth.backend import Request
from curate.synth.config import SynthCotConfig
from curate.synth.cot import SynthCot

GENERATOR = {"backend": "offline"}


def cot(**options) -> SynthCotConfig:
    return validate_model(SynthCotConfig, {"generator": GENERATOR, **options},
                          where="recipe.yaml: synth.cot")


def test_the_retry_schedule_is_clamped_at_max_temperature():
    config = cot(max_attempts=20)  # 0.7 + 0.2 per retry would pass 2.0 at attempt 8
    schedule = [config.attempt_temperature(a) for a in range(1, 21)]
    assert schedule[:7] == [0.7, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9]
    assert schedule[7:] == [2.0] * 13
    lower = cot(max_attempts=5, temperature=0.5, temperature_step=0.5, max_temperature=1.2)
    assert [lower.attempt_temperature(a) for a in range(1, 6)] == [0.5, 1.0, 1.2, 1.2, 1.2]


def test_sampling_options_outside_vllms_limits_fail_at_recipe_load_naming_the_field():
    with pytest.raises(ConfigError, match=r"^recipe.yaml: synth.cot: `temperature`: Input should "
                                          r"be less than or equal to 2"):
        cot(temperature=2.5)
    with pytest.raises(ConfigError, match=r"^recipe.yaml: synth.cot: `max_temperature`: Input "
                                          r"should be less than or equal to 2"):
        cot(max_temperature=3)
    with pytest.raises(ConfigError, match=r"`temperature` 1.5 is above `max_temperature` 1.0"):
        cot(temperature=1.5, max_temperature=1.0)


def test_a_request_vllm_would_reject_is_refused_before_it_is_sent():
    ask = [{"role": "user", "content": "Why?"}]
    with pytest.raises(ConfigError, match=r"`n`=2 samples need a positive `temperature`"):
        Request.chat(ask, max_tokens=8, n=2)  # the default temperature is 0: greedy
    with pytest.raises(ConfigError, match=r"`temperature` 2.2 is outside \[0, 2\]"):
        Request.chat(ask, max_tokens=8, temperature=2.2)
    assert Request.chat(ask, max_tokens=8, n=2, temperature=0.7).n == 2


def test_close_vllm_prefers_llm_shutdown_then_the_engine_core():
    calls = []
    newer = types.SimpleNamespace(shutdown=lambda: calls.append("LLM.shutdown"), llm_engine=None)
    core = types.SimpleNamespace(shutdown=lambda: calls.append("engine_core.shutdown"))
    older = types.SimpleNamespace(llm_engine=types.SimpleNamespace(engine_core=core))
    close_vllm(newer)
    close_vllm(older)
    close_vllm(None)
    assert calls == ["LLM.shutdown", "engine_core.shutdown"]


@pytest.mark.slow
def test_scorers_are_closed_before_the_generator_starts_in_one_build(monkeypatch, tmp_path):
    """Quality (two vLLM scorers) then synthesis (a vLLM generator asking for 0.9 of the GPU) in
    one process, as build-mix runs them: without the scorers' engines shut down the generator
    could not start (the double refuses, as vLLM does); ten retries pass 2.0 unclamped."""
    vllm = install_vllm_double(monkeypatch)
    c, q, g = (build_tiny_lm(tmp_path / name, seed=seed)
               for name, seed in (("complexity", 0), ("quality", 1), ("generator", 2)))
    store = RunStore(tmp_path / "run")
    write_chat_source(store, "toy", rows=30, shards=1)
    stage = Quality(QualityConfig(complexity_model=str(c), quality_model=str(q), backend="vllm",
                                  max_length=48, drop_fraction=0.0))
    [scored] = run_stages([stage], store, ["toy"], input_fingerprint="in")
    assert vllm.events == [("start", str(c)), ("start", str(q)),
                           ("shutdown", str(c)), ("shutdown", str(q))]
    config = SynthCotConfig(generator={"backend": "vllm", "model": str(g)}, max_rows=2,
                            max_attempts=10, max_tokens=4, gold_answer="withheld",
                            open_qa_check="non_empty")
    step = SynthCot(config)

    def parents():
        return RunReader(store).kept(["toy"], ["quality"]).collect().to_arrow()

    result = run_producer(step, store, parents, input_fingerprint="kept",
                          context=StageContext(cache=tmp_path / "cache"))
    assert vllm.events[4:] == [("start", str(g)), ("shutdown", str(g))]
    assert vllm.alive == []
    generator = vllm.instances[-1]
    assert generator.engine["gpu_memory_utilization"] == 0.9
    temperatures = sorted({p.temperature for p in generator.params})
    assert temperatures == [0.7, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9, 2.0]  # attempts 8-10 at the cap
    assert result.stats["rows"] == 2 and scored.stats["rows"] == 30
