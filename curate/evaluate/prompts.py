"""The MCQA prompt builder, as the evaluation modules import it.

The one implementation is ``curate.rag.prompts`` (retrieval sits below evaluation and
builds the same prompts for serving); this module re-exports it so there is one prompt
builder, never two.
"""

from curate.rag.prompts import (
    COT_INSTRUCTION,
    COT_SYSTEM,
    TEMPLATES,
    McqaItem,
    Prompt,
    Template,
    TemplateName,
    build_prompt,
    letter,
)

__all__ = ["COT_INSTRUCTION", "COT_SYSTEM", "TEMPLATES", "McqaItem", "Prompt", "Template", "TemplateName",
           "build_prompt", "letter"]
