"""Generation backends and synthetic chain-of-thought enhancement.

- ``curate.synth.config``: the backends' options and ``SynthCotConfig`` (pydantic only);
- ``curate.synth.backend``: ``Request``, ``Completion``, ``Backend``, ``make_backend(name,
  **options)`` over ``vllm``, ``openai``, ``transformers`` and ``offline``;
- ``curate.synth.cot``: ``synth_cot_v1``, as a pipeline step (``SynthCot``) and as
  functions (``enhance``, ``enhance_file``).

Importing this package loads nothing: no model library, no HTTP client, no Arrow.
"""
