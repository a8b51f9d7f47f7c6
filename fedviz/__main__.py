"""Entry point of `python -m fedviz` (see fedviz.cli)."""

from fedviz.cli import main

raise SystemExit(main())
