"""Loading models: one loader for every module that runs one.

The quality scorer, the ``transformers`` generation backend, training and evaluation
all load a model the same way: by hub name (with a pinned ``revision``) or local
folder, on a resolved device, with one meaning of ``dtype="auto"`` (bfloat16 on a GPU,
float32 on the CPU: the checkpoint's own dtype is often float16, which is slow or
broken on a CPU), and ``trust_remote_code`` off unless a recipe turns it on.

A failure says which of two things went wrong: a local folder that does not exist, or
a model the hub (or the local cache, offline) could not give. Before a hub name loads,
one quick request (``hub_reachable``, at most ``HUB_PROBE_SECONDS``, once per process)
asks whether the hub answers; when it does not, the model loads from the local cache
only, so an unreachable hub costs seconds rather than a minute of huggingface_hub's
retries, and its warnings are not printed.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curate.config import Device, Dtype
from curate.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

HUB_PROBE_SECONDS = 5.0
"""How long ``hub_reachable`` waits for the hub's answer."""


def resolve_device(device: Device = "auto") -> str:
    """``device`` with `auto` replaced by `cuda` when a GPU is visible, else `cpu`."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: Dtype, device: str) -> torch.dtype:
    """The torch dtype ``dtype`` means on ``device``: `auto` is bfloat16 on a GPU and
    float32 on the CPU."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def looks_local(name: str) -> bool:
    """Whether ``name`` names a local folder rather than a hub repository: it exists, is
    absolute, starts with ``.`` or ``~``, or has more than one ``/``."""
    return (Path(name).expanduser().exists() or name.startswith((".", "/", "~"))
            or name.count("/") > 1)


def load_tokenizer(name: str, *, revision: str | None = None, trust_remote_code: bool = False,
                   what: str = "model") -> PreTrainedTokenizerBase:
    """The tokenizer of ``name`` (hub name or local folder); ``what`` names the model in
    errors (``scorer `x```)."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingDependencyError("transformers", "ml") from None
    return _loading(lambda: AutoTokenizer.from_pretrained(
        _location(name, what), **_hub(name, revision, trust_remote_code)), name, revision, what)


def load_model_config(name: str, *, revision: str | None = None, trust_remote_code: bool = False,
                      what: str = "model") -> Any:
    """The ``transformers`` config (``config.json``) of ``name`` (hub name or local folder),
    without its weights."""
    try:
        from transformers import AutoConfig
    except ImportError:
        raise MissingDependencyError("transformers", "ml") from None
    return _loading(lambda: AutoConfig.from_pretrained(
        _location(name, what), **_hub(name, revision, trust_remote_code)), name, revision, what)


def load_causal_lm(name: str, *, revision: str | None = None, dtype: Dtype = "auto",
                   device: Device = "auto", trust_remote_code: bool = False,
                   what: str = "model") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer, the model on ``device`` in eval mode."""
    try:
        from transformers import AutoModelForCausalLM
    except ImportError:
        raise MissingDependencyError("transformers", "ml") from None
    tokenizer = load_tokenizer(name, revision=revision, trust_remote_code=trust_remote_code,
                               what=what)
    where = resolve_device(device)
    model = _loading(lambda: AutoModelForCausalLM.from_pretrained(
        _location(name, what), dtype=resolve_dtype(dtype, where),
        **_hub(name, revision, trust_remote_code)), name, revision, what)
    return model.to(where).eval(), tokenizer


def load_image_text_lm(name: str, *, revision: str | None = None, dtype: Dtype = "auto",
                       device: Device = "auto", trust_remote_code: bool = False,
                       what: str = "vision-language model") -> tuple[PreTrainedModel, Any]:
    """An image-text-to-text model (a vision-language model) and its processor, the model
    on ``device``."""
    try:
        from transformers import AutoModelForImageTextToText, AutoProcessor
    except ImportError:
        raise MissingDependencyError("transformers", "ml") from None
    location, hub = _location(name, what), _hub(name, revision, trust_remote_code)
    processor = _loading(lambda: AutoProcessor.from_pretrained(location, **hub), name, revision, what)
    where = resolve_device(device)
    model = _loading(lambda: AutoModelForImageTextToText.from_pretrained(
        location, dtype=resolve_dtype(dtype, where), **hub), name, revision, what)
    return model.to(where), processor


def load_processor(name: str, *, revision: str | None = None, trust_remote_code: bool = False,
                   what: str = "vision-language model") -> Any:
    """The processor (image processor and tokenizer) of ``name``; a ConfigError when the
    model ships only a tokenizer (it is not a vision-language model)."""
    try:
        from transformers import AutoProcessor, ProcessorMixin
    except ImportError:
        raise MissingDependencyError("transformers", "ml") from None
    location, hub = _location(name, what), _hub(name, revision, trust_remote_code)
    processor = _loading(lambda: AutoProcessor.from_pretrained(location, **hub), name, revision, what)
    if not isinstance(processor, ProcessorMixin):
        raise ConfigError(f"cannot load {what} `{name}`: it ships a {type(processor).__name__}, no "
                          "processor (image processor and tokenizer)")
    return processor


@functools.cache
def hub_reachable() -> bool:
    """Whether the Hugging Face hub answers (one request without retries, bounded by
    ``HUB_PROBE_SECONDS``); False in offline mode (``HF_HUB_OFFLINE=1``)."""
    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session
    except ImportError:
        return False
    if constants.is_offline_mode():
        return False
    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_SECONDS)
    except Exception as exc:  # any transport failure means: not reachable from here
        log.info("the hub at %s is unreachable: %s", constants.ENDPOINT, _first_line(exc))
        return False
    return True


def hub_options(name: str, revision: str | None = None) -> dict[str, Any]:
    """``from_pretrained`` options for ``name``: its revision, and ``local_files_only``
    when it is a hub name and the hub is unreachable (the cache answers, or it fails at once)."""
    options: dict[str, Any] = {} if revision is None else {"revision": revision}
    if not looks_local(name) and not hub_reachable():
        options["local_files_only"] = True
    return options


def _location(name: str, what: str) -> str:
    if looks_local(name) and not Path(name).expanduser().is_dir():
        raise ConfigError(f"cannot load {what} `{name}`: no such folder (a local model is a "
                          "folder with config.json; a hub model is named `owner/name`)")
    return str(Path(name).expanduser()) if looks_local(name) else name


def _hub(name: str, revision: str | None, trust_remote_code: bool) -> dict[str, Any]:
    return {"trust_remote_code": trust_remote_code, **hub_options(name, revision)}


def _loading(load: Any, name: str, revision: str | None, what: str) -> Any:
    """``load()``, with its failures said in one line."""
    try:
        return load()
    except (OSError, ValueError) as exc:
        if looks_local(name):
            raise ConfigError(f"cannot load {what} `{name}`: {_first_line(exc)}") from None
        at = f" at revision `{revision}`" if revision else ""
        if not hub_reachable():
            raise ConfigError(
                f"cannot load {what} `{name}`{at}: the hub is unreachable from here (offline, or "
                "no network) and the model is not in the local cache. Go online (and log in with "
                "`hf auth login` for a gated model), or pass a local folder") from None
        raise ConfigError(
            f"cannot load {what} `{name}`{at} from the hub or the local cache: "
            f"{_first_line(exc)}. Log in (`hf auth login`) or go online, or pass a local "
            "folder") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def free_memory() -> None:
    """Collect garbage and give cached GPU memory back to the device (after a model was
    dropped), so the next step can load its own."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
