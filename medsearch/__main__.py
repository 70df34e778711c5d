"""`python -m medsearch …` runs the command-line interface."""

from medsearch.cli import main

raise SystemExit(main())
