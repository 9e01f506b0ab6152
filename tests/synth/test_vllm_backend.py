"""The `vllm` backend: a clear error without vllm; on a GPU, a tiny local model end to end."""

from __future__ import annotations

import importlib.util

import pytest

from curate.errors import MissingDependencyError
from curate.synth.backend import Request, make_backend


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_without_vllm_the_error_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"pip install 'curate\[vllm\]'"):
        make_backend("vllm", model="meta-llama/Llama-3.1-70B-Instruct", tensor_parallel_size=8)


@pytest.mark.gpu
def test_vllm_chat_with_seed_n_and_a_choice_constraint(tmp_path):
    pytest.importorskip("vllm")
    from tiny_lm import build_tiny_lm

    folder = build_tiny_lm(tmp_path / "tiny", hidden_size=256, heads=4)  # head size 64 for vLLM
    backend = make_backend("vllm", model=str(folder), gpu_memory_utilization=0.3, max_model_len=256)

    def ask(**fields) -> Request:
        return Request.chat([{"role": "user", "content": "What is the capital of France?"}], **fields)

    free, again, constrained = backend.generate([
        ask(max_tokens=20, n=2, temperature=1.0, seed=3),
        ask(max_tokens=20, n=2, temperature=1.0, seed=3),
        ask(max_tokens=5, choices=("yes", "no")),
    ])
    assert len(free.texts) == 2 and free.texts == again.texts
    assert 2 <= free.completion_tokens <= 40 and free.prompt_tokens > 0
    assert constrained.texts[0] in ("yes", "no")
