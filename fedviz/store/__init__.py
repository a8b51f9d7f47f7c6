"""The run store: ended runs kept in an embedded SQLite file, to be redrawn, listed and
handed out without running anything again.

- `db`: the file (where it lives, schema version, migrations, transactions).
- `recorder`: what of a run's event stream is kept (never a key, never a data file's rows).
- `runs`: save, list, load, label, pin, delete; a stored run folds back into what pages draw.
- `keeping`: a dashboard job kept when it ends (with what its key holder opened).
- `handout`: one self-contained HTML file of a stored run.
- `cli`: `python -m fedviz runs ...` and the `--save` of a run.
"""

from fedviz.store.db import StoreError, home
from fedviz.store.recorder import Recorder, Source
from fedviz.store.runs import Folded, RunInfo, RunStore, StoredRun, Timing, UnknownRun

__all__ = [
    "Folded",
    "Recorder",
    "RunInfo",
    "RunStore",
    "Source",
    "StoreError",
    "StoredRun",
    "Timing",
    "UnknownRun",
    "home",
]
