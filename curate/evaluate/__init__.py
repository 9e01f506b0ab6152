"""Evaluation: MCQA benchmarks (with retrieval), safety (attack success, over-refusal), benchmark audit."""
