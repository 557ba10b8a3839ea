"""``python -m harness`` runs the CLI."""

from .cli import main

main()
