"""fedviz: secure federated learning with Paillier encryption, run live and measured.

This package is the engine. It has no user-interface code: the CLI (`python -m fedviz`),
the Streamlit pages and the tests all consume the typed event stream of
`fedviz.engines.inprocess.run`. Importing the package itself is cheap (no numpy, no phe), so the
process-pool workers that only need `fedviz.crypto.obfuscators` start fast.
"""

__version__ = "0.1.0"
