"""`python -m curate.cli`: the `curate` command."""

from curate.cli import main

main()
