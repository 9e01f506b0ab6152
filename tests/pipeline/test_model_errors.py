"""Model loading fails in one line, fast, and says why (issue 16, item 5)."""

from __future__ import annotations

import logging
import time

import pytest
from click.testing import CliRunner
from huggingface_hub import constants
from newcomer import newcomer_rows, write_jsonl

from curate import models
from curate.cli import main
from curate.errors import ConfigError


@pytest.fixture
def unreachable_hub(monkeypatch):
    """A hub endpoint nothing listens on (connection refused at once): the test sends
    nothing to the internet, whatever the machine's network."""
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    models.hub_reachable.cache_clear()
    yield
    models.hub_reachable.cache_clear()


@pytest.mark.slow  # importing transformers
def test_an_unreachable_hub_is_said_at_once_without_retries(unreachable_hub, caplog, tmp_path):
    caplog.set_level(logging.WARNING)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="the hub is unreachable from here") as error:
        models.load_causal_lm("no-such-owner/no-such-model", what="scorer model")
    assert time.perf_counter() - started < 10
    message = str(error.value)
    assert message.startswith("cannot load scorer model `no-such-owner/no-such-model`: the hub is "
                              "unreachable from here") and "\n" not in message
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]


def test_offline_mode_reads_the_cache_only(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    models.hub_reachable.cache_clear()
    try:
        assert models.hub_options("owner/name", "abc") == {"revision": "abc", "local_files_only": True}
        assert models.hub_options("./folder") == {}
    finally:
        models.hub_reachable.cache_clear()


def test_curate_score_without_the_models_is_one_line(unreachable_hub, tmp_path):
    rows, _ = newcomer_rows()
    mine = write_jsonl(tmp_path / "my.jsonl", rows[:4])
    result = CliRunner().invoke(main, ["score", str(mine), "--kept", str(tmp_path / "k.jsonl")])
    assert result.exit_code == 2
    assert result.output.startswith("error: cannot load scorer")
    assert "the hub is unreachable from here" in result.output
    missing = CliRunner().invoke(main, ["score", str(mine), "--kept", str(tmp_path / "k.jsonl"),
                                        "--complexity-model", "./deita-complexity"])
    assert missing.exit_code == 2
    assert "`./deita-complexity`: no such folder" in missing.output
    assert "Repo id" not in missing.output
