"""Entry point of `python -m fedviz`: the experiment (see fedviz.cli), the comparison of
protections (`compare`), the run store (`runs`: see fedviz.store.cli), or a pilot's commands (`pilot ...`, `coordinator`, `site`: see
fedviz.pilot.cli)."""

import sys

if sys.argv[1:2] and sys.argv[1] in ("pilot", "coordinator", "site"):
    from fedviz.pilot.cli import main

    raise SystemExit(main())
if sys.argv[1:2] == ["runs"]:
    from fedviz.store.cli import main as runs_main

    raise SystemExit(runs_main(sys.argv[2:], sys.stdout, sys.stderr))
if sys.argv[1:2] == ["compare"]:
    from fedviz.cli import compare_main

    raise SystemExit(compare_main(sys.argv[2:], sys.stdout, sys.stderr))

from fedviz.cli import main

raise SystemExit(main())
