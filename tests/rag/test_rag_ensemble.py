"""The shuffle ensemble: unique permutations, answers mapped back to the original letter
through the real prompt builder (property tests), the seeded vote, the retry schedule."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from curate.rag.ensemble import attempt_schedule, item_seed, map_back, permutations, vote
from curate.rag.prompts import McqaItem, build_prompt
from curate.synth.verify import extract_choice

sys.path.insert(0, str(Path(__file__).parents[1] / "synth"))
from fake_openai import Reply, chat_completion, server  # noqa: E402, F401 (fixture)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 7), shuffles=st.integers(1, 30), seed=st.integers(0, 2**31 - 1))
def test_permutations_are_unique_identity_first_and_as_many_as_possible(n, shuffles, seed):
    orders = permutations(n, shuffles, seed)
    assert orders[0] == tuple(range(n))
    assert len(orders) == min(shuffles, math.factorial(n)) == len(set(orders))
    assert all(sorted(o) == list(range(n)) for o in orders)
    assert orders == permutations(n, shuffles, seed)  # seeded: the same orders every time


@settings(max_examples=200, deadline=None)
@given(options=st.lists(st.text(alphabet="abcdefghij ", min_size=1, max_size=12).map(str.strip)
                        .filter(bool), min_size=2, max_size=6, unique=True),
       data=st.data(), shuffles=st.integers(1, 8), seed=st.integers(0, 1000))
def test_a_model_that_knows_the_answer_is_mapped_back_to_the_gold_under_every_order(
        options, data, shuffles, seed):
    gold = data.draw(st.integers(0, len(options) - 1))
    item = McqaItem.of("Which one?", options, gold)
    votes = []
    for order in permutations(len(options), shuffles, seed):
        for template in ("letters", "cot"):
            prompt = build_prompt(item, template, order=order)
            shown = [item.options[i] for i in order]
            assert [prompt.original(k) for k in range(len(options))] == list(order)
            listing = prompt.text.split("\n")
            for k, text in enumerate(shown):  # the letter shown is the text at that position
                assert f"{chr(65 + k)}. {text}" in listing
            # the model answers with the letter under which the gold text is shown
            letter = chr(65 + shown.index(item.options[gold]))
            picked = extract_choice(f"Reasoning.\nAnswer: {letter}", shown)
            assert prompt.original(picked) == map_back(order, picked) == gold
        votes.append(map_back(order, picked))
    assert vote(votes, seed) == gold


@settings(max_examples=300, deadline=None)
@given(choices=st.lists(st.one_of(st.none(), st.integers(0, 4)), max_size=12), seed=st.integers(0, 99))
def test_vote_is_the_majority_and_a_seeded_pick_among_ties(choices, seed):
    readable = [c for c in choices if c is not None]
    result = vote(choices, seed)
    if not readable:
        assert result is None
        return
    counts = {c: readable.count(c) for c in set(readable)}
    assert counts[result] == max(counts.values())
    assert vote(choices, seed) == result
    if list(counts.values()).count(max(counts.values())) == 1:
        assert all(vote(choices, s) == result for s in range(5))


def test_ties_are_broken_by_the_seed_not_by_order():
    picks = {vote([0, 1, None, 1, 0], s) for s in range(40)}
    assert picks == {0, 1}
    assert vote([2, 2, 1], 7) == 2 and vote([None, None], 3) is None


def test_retry_schedule_steps_temperature_within_0_to_2_and_tokens_up():
    assert attempt_schedule(0.0, 512, 3, temperature_step=0.3, token_step=256) == [
        (0.0, 512), (0.3, 768), (0.6, 1024), (0.9, 1280)]
    hot = attempt_schedule(1.5, 8, 3, temperature_step=0.4, token_step=0)
    assert [t for t, _ in hot] == [1.5, 1.9, 2.0, 2.0]
    assert item_seed(0, "medmcqa:3") == item_seed(0, "medmcqa:3") != item_seed(1, "medmcqa:3")


def test_generate_retries_an_unreadable_answer_hotter_and_longer(server, tmp_path):  # noqa: F811
    from curate.evaluate.config import McqaConfig
    from curate.evaluate.mcqa import evaluate_mcqa

    unreadable = chat_completion(["I am not sure."], model="tiny", completion_tokens=4)
    server.script.append(Reply(body=json.dumps(unreadable)))
    config = McqaConfig(model={"backend": "openai", "model": "tiny", "base_url": server.url,
                               "concurrency": 1},
                        mode="generate", limit=3, max_tokens=300, retries=2, retry_temperature_step=0.5,
                        retry_token_step=100)
    result = evaluate_mcqa(["pubmedqa"], config, out=tmp_path)
    assert len(server.bodies) == 4  # three prompts, one retried once
    retry = server.bodies[3]
    assert retry["messages"] == server.bodies[0]["messages"]
    assert (retry["temperature"], retry["max_tokens"]) == (0.5, 400)
    assert result.predictions.get_column("attempts").to_list() == [2, 1, 1]
    assert result.predictions.get_column("prediction").null_count() == 0
