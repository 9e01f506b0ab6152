"""The `transformers` backend on a tiny random Llama built in-process (its text is noise)."""

from __future__ import annotations

import pytest
from fake_openai import make_mcqa  # noqa: F401 (fixture)

from curate.errors import ConfigError
from curate.synth.backend import Request, make_backend
from curate.synth.config import SynthCotConfig
from curate.synth.cot import enhance

torch = pytest.importorskip("torch")
from tiny_lm import build_tiny_lm  # noqa: E402 (tests/tiny_lm.py, after the torch check)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))
    backend = make_backend("transformers", model=str(folder), device="cpu", batch_size=4)
    yield backend
    backend.teardown()


def ask(text: str, **fields) -> Request:
    return Request.chat([{"role": "user", "content": text}], **fields)


def test_shapes_n_and_token_counts(tiny):
    requests = [ask("What is the capital of France?", max_tokens=6, n=3, temperature=1.0, seed=1),
                ask("How do I treat a cold?", max_tokens=4, temperature=0.0, seed=2)]
    first, second = tiny.generate(requests)
    assert len(first.texts) == 3 and len(second.texts) == 1
    assert 3 <= first.completion_tokens <= 18 and 1 <= second.completion_tokens <= 4
    prompt = tiny.tokenizer.apply_chat_template(requests[0].message_dicts(), tokenize=False,
                                                add_generation_prompt=True)
    assert first.prompt_tokens == len(tiny.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert set(first.finish_reasons) <= {"stop", "length"}


def test_a_seed_fixes_the_text_whatever_the_batch(tiny):
    alone = tiny.generate([ask("Explain why the sky is blue.", max_tokens=8, temperature=1.0, seed=5)])
    batched = tiny.generate([ask("Give me a list of fruits.", max_tokens=3, temperature=1.0, seed=9),
                             ask("Explain why the sky is blue.", max_tokens=8, temperature=1.0, seed=5),
                             ask("Thank you!", max_tokens=8, temperature=0.0)])
    assert batched[1].texts == alone[0].texts
    samples = tiny.generate([ask("Write a short poem about the sea.", max_tokens=8, n=4,
                                 temperature=1.5, seed=3)])[0].texts
    assert len(set(samples)) > 1  # the n samples differ from each other


def test_greedy_is_deterministic_without_a_seed(tiny):
    requests = [ask("What are the symptoms of diabetes?", max_tokens=6)]
    assert tiny.generate(requests)[0].texts == tiny.generate(requests)[0].texts


def test_choices_are_refused_clearly(tiny):
    with pytest.raises(ConfigError, match="does not constrain answers"):
        tiny.generate([ask("yes or no?", max_tokens=2, choices=("yes", "no"))])


def test_enhance_runs_on_it_and_rejects_the_noise(tiny, tmp_path, make_mcqa):
    config = SynthCotConfig(generator={"backend": "transformers", "model": tiny.model},
                            max_attempts=2, max_tokens=8)
    synthetic, rejected, stats = enhance(make_mcqa(3), config, tmp_path / "cache", backend=tiny)
    # a random model writes no "Answer: X" line: every row is rejected, each attempt spent, with its reason
    assert synthetic.num_rows == 0 and stats["synthetic"] == 0
    assert rejected.column("reason").to_pylist() == ["no_answer"] * 3
    assert rejected.column("attempts").to_pylist() == [2, 2, 2]
    assert stats["rejected"] == {"no_answer": 3} and stats["failed_attempts"] == {"no_answer": 6}
    assert stats["requests"]["sent"] == 6
    assert stats["generator"]["backend"] == "transformers"
    assert 0 < stats["tokens"]["completion"] <= 3 * 2 * 8
