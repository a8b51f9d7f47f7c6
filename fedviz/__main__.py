"""Entry point of `python -m fedviz`: the experiment (see fedviz.cli), or a pilot's commands
(`pilot ...`, `coordinator`, `site`: see fedviz.pilot.cli)."""

import sys

if sys.argv[1:2] and sys.argv[1] in ("pilot", "coordinator", "site"):
    from fedviz.pilot.cli import main
else:
    from fedviz.cli import main

raise SystemExit(main())
