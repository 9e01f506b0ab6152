"""Shared helpers of the evaluation tests: a tiny Llama whose vocabulary knows the prompts'
words, built once per session."""

from __future__ import annotations

from pathlib import Path

from tiny_lm import build_tiny_lm

WORDS = "A B C D E F G H I J Answer: Question: Options: Think step by step about each option"


def tiny_model(folder: Path, *, seed: int = 0) -> Path:
    return build_tiny_lm(folder, texts=[WORDS], seed=seed)
