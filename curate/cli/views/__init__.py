"""How each command group prints its typed results (``--json`` aside)."""
