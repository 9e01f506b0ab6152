"""The safety taxonomy as data: topics, attack styles and judge categories per domain.

``catalogs/safety/taxonomy.yaml`` (shipped) holds the topics adversarial requests are
tagged with (a source's own category field, or a keyword map for sources without one),
the attack styles used by default (each the name of a transformation in
``curate.synth.attacks.STYLES``: the transformations are code, the choice is data), and,
per domain, the Llama Guard 3 categories the judge applies (``medical`` leaves out S6,
Specialized Advice, which flags ordinary medical answers). The file says where its lists
come from and why they are not Egida's published 27 topics x 18 styles; another file with
the same keys replaces it (``taxonomy:`` in a ``curate safety pairs`` or ``curate eval
safety`` config: ``with_defaults`` fills in its styles and the judge's categories).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from curate.config import Config, load_model

CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex Crimes",
    "S4": "Child Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}
"""Llama Guard 3's hazard categories, as its prompt names them (MLCommons taxonomy + S14)."""

TAXONOMY_FILE = "safety/taxonomy.yaml"
"""The shipped taxonomy, relative to the shipped catalogs folder."""


class Taxonomy(Config):
    """Topics, attack styles and judge categories per domain (see the module docstring)."""

    name: str = Field(description="The taxonomy's name, recorded with what it tags.")
    topic_fields: dict[str, str] = Field(default_factory=dict, description=(
        "Sources whose rows name their own topic: source -> the `meta` key holding it."))
    topics: dict[str, list[str]] = Field(description=(
        "Topic -> keywords, in priority order: a request gets the first topic with a keyword at a "
        "word start of its lower-cased text."))
    other_topic: str = Field("other", description="The topic of a request no keyword matches.")
    styles: dict[str, str] = Field(description=(
        "The attack styles used by default: name (a transformation of curate.synth.attacks.STYLES) "
        "-> what it does."))
    judge_categories: dict[str, list[str]] = Field(description=(
        "Domain -> the Llama Guard 3 category codes the judge applies."))

    @field_validator("styles")
    @classmethod
    def _known_styles(cls, value: dict[str, str]) -> dict[str, str]:
        from curate.synth.attacks import STYLES

        unknown = [s for s in value if s not in STYLES or s == "direct"]
        if unknown:
            raise ValueError(f"unknown attack styles {unknown}; curate.synth.attacks implements "
                             f"{', '.join(s for s in STYLES if s != 'direct')}")
        if len(value) < 2:
            raise ValueError("give at least two styles: whole styles are held out for the test split")
        return value

    @field_validator("judge_categories")
    @classmethod
    def _known_codes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for domain, codes in value.items():
            unknown = [c for c in codes if c not in CATEGORIES]
            if unknown or not codes:
                raise ValueError(f"domain `{domain}`: give Llama Guard 3 codes ({', '.join(CATEGORIES)}); "
                                 f"got {codes}")
        return value

    @model_validator(mode="after")
    def _topics(self) -> Taxonomy:
        if self.other_topic in self.topics:
            raise ValueError(f"`other_topic` `{self.other_topic}` is also a keyword topic")
        return self

    @functools.cached_property
    def keyword_patterns(self) -> dict[str, re.Pattern[str]]:
        """Topic -> one pattern of its keywords, each at a word start."""
        return {topic: re.compile(r"\b(?:" + "|".join(re.escape(k.lower()) for k in words) + ")")
                for topic, words in self.topics.items() if words}

    def keyword_topic(self, text: str) -> str:
        """The first topic with a keyword in ``text``; ``other_topic`` when none."""
        lowered = text.lower()
        for topic, pattern in self.keyword_patterns.items():
            if pattern.search(lowered):
                return topic
        return self.other_topic

    def categories_for(self, domain: str) -> list[str]:
        """The judge's categories for ``domain``; a ValueError naming the known domains."""
        if domain not in self.judge_categories:
            raise ValueError(f"`judge.domain`: no judge categories for domain `{domain}`; the taxonomy "
                             f"`{self.name}` has {', '.join(self.judge_categories)} (or give `categories`)")
        return list(self.judge_categories[domain])

    def topic(self, source: str, text: str, meta: dict[str, object]) -> tuple[str, str]:
        """A request's topic and where it came from: the source's own category field
        (``meta:<key>``, ``topic_fields``) when the row has one, else its keywords."""
        field_name = self.topic_fields.get(source)
        if field_name is not None and meta.get(field_name):
            return str(meta[field_name]), f"meta:{field_name}"
        return self.keyword_topic(text), "keywords"


def keyword_topic(text: str, taxonomy: Taxonomy | None = None) -> str:
    """The first topic of the taxonomy's keyword map (default: the shipped one) with a
    keyword in ``text``; its ``other_topic`` when none."""
    return (taxonomy or default_taxonomy()).keyword_topic(text)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The taxonomy in the YAML file ``path``; the shipped one when None."""
    if path is None:
        return default_taxonomy()
    return load_model(Taxonomy, Path(path))


@functools.cache
def default_taxonomy() -> Taxonomy:
    """The shipped taxonomy (read once)."""
    from curate.catalog import shipped_catalog_dir

    return load_model(Taxonomy, shipped_catalog_dir() / TAXONOMY_FILE)


def with_defaults(data: Any, *, direct: bool = False) -> Any:
    """The raw options of a config with a ``taxonomy`` file, ``styles`` and a ``judge``
    (``curate safety pairs``, ``curate eval safety``), with what the taxonomy decides filled
    in where the options leave it out: ``styles`` (the taxonomy's, after ``direct`` when
    ``direct``) and the judge's ``categories`` (those of its ``domain``, default ``general``).
    Given ``categories`` or ``styles`` are kept as they are."""
    if not isinstance(data, dict):
        return data
    taxonomy = load_taxonomy(data.get("taxonomy"))
    data = dict(data)
    if not data.get("styles"):
        data["styles"] = [*(["direct"] if direct else []), *taxonomy.styles]
    judge = data.get("judge")
    if isinstance(judge, dict) and "categories" not in judge:
        data["judge"] = {**judge, "categories": taxonomy.categories_for(str(judge.get("domain", "general")))}
    return data
