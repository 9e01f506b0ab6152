"""A tiny causal language model with a real tokenizer, built in-process for tests.

``build_tiny_lm(folder)`` writes a randomly initialised Llama model (hidden size 32,
2 layers, 4 heads by default) and a word-level tokenizer with a chat template into
``folder`` with ``save_pretrained``, so code under test loads it by path through
``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``, exactly
as it would load a hub model. Nothing is downloaded.

The tokenizer splits on whitespace and punctuation (``tokenizers``' ``Whitespace``
pre-tokenizer); every word of ``texts``, of a small built-in corpus and of the DEITA
scoring prompts is one token, and so is each digit 0-9. Unknown words become ``<unk>``.
It adds ``<s>`` in front of every encoded text (like Llama's tokenizer); ``</s>`` ends
a turn. The chat template marks assistant content with ``{% generation %}`` so TRL's
``assistant_only_loss`` works::

    <|user|> What is it? <|assistant|> An answer. </s> <|user|> ...

Same arguments, same files: the weights come from ``seed``, the vocabulary is sorted
(or shuffled by ``vocab_seed``). ``build_tiny_tokenizer(folder)`` writes the tokenizer
alone (no torch import), optionally with another chat template or none.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SPECIAL = ["<unk>", "<pad>", "<s>", "</s>"]
ROLES = ["<|system|>", "<|user|>", "<|assistant|>"]
CORPUS = (
    "You are a helpful assistant. Please identify the complexity score of the following user "
    "query. ##Query: ##Complexity: Please identify the quality score of the Response "
    "corresponding to the Question. #Question#: #Response#: ##Quality: "
    "What is the capital of France? Paris is the capital of France. How do I treat a cold? "
    "Rest, fluids and time; see a doctor if the fever is high. Explain why the sky is blue. "
    "Sunlight scatters off air molecules, and blue light scatters most. Write a short poem "
    "about the sea. The sea is wide and grey and deep. What are the symptoms of diabetes? "
    "Thirst, frequent urination, tiredness and blurred vision. Give me a list of fruits. "
    "Apples, pears, plums. Thank you! You are welcome. yes no maybe a an the of to in on and "
    "or is are was were be it this that with for as by at from"
)
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}"
    "<|assistant|> {% generation %}{{ m['content'] }} </s>{% endgeneration %} "
    "{% else %}<|{{ m['role'] }}|> {{ m['content'] }} {% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_tiny_lm(
    folder: Path,
    *,
    texts: Iterable[str] = (),
    seed: int = 0,
    vocab_seed: int | None = None,
    constant_logits: bool = False,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 512,
    dtype: str | None = None,
) -> Path:
    """Save a tiny Llama model and its tokenizer in ``folder``; return ``folder``.

    ``texts``: extra text whose words join the vocabulary. ``seed``: the weights.
    ``vocab_seed``: shuffle the vocabulary's ids (a different vocabulary order).
    ``constant_logits``: zero the output layer, so every next-token distribution is
    uniform (a collapsed scorer). ``hidden_size``, ``layers``, ``heads``: the size;
    ``max_positions``: the context length; ``dtype``: the dtype the config names (e.g.
    ``"bfloat16"`` for vLLM), None for the default.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer(texts, vocab_seed=vocab_seed, max_positions=max_positions)
    vocab = tokenizer.get_vocab()

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_positions, initializer_range=0.5, tie_word_embeddings=False,
        bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"], pad_token_id=vocab["<pad>"],
        **({"torch_dtype": dtype} if dtype else {}))
    model = LlamaForCausalLM(config)
    if constant_logits:
        with torch.no_grad():
            model.lm_head.weight.zero_()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_tokenizer(folder: Path, *, texts: Iterable[str] = (), vocab_seed: int | None = None,
                         chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """Save ``build_tiny_lm``'s tokenizer alone in ``folder``; return ``folder``.

    ``chat_template``: the template to save with it (None: no chat template).
    """
    tokenizer = _tokenizer(texts, vocab_seed=vocab_seed, max_positions=512)
    tokenizer.chat_template = chat_template
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    return folder


def _tokenizer(texts: Iterable[str], *, vocab_seed: int | None, max_positions: int) -> Any:
    """The word-level tokenizer (see the module docstring), with ``CHAT_TEMPLATE``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    splitter = pre_tokenizers.Whitespace()
    words = {w for text in (CORPUS, *texts) for w, _ in splitter.pre_tokenize_str(text)}
    words = sorted(words | set("0123456789"))
    if vocab_seed is not None:
        random.Random(vocab_seed).shuffle(words)
    vocab = {token: i for i, token in enumerate([*SPECIAL, *ROLES, *words])}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = splitter
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
        eos_token="</s>", additional_special_tokens=ROLES, model_max_length=max_positions)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
