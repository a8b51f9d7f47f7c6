"""The experiment's data, whichever way it comes: the post's diabetes blocks, one source dealt
out (`fedviz.data.sources`), or each site's own file (`fedviz.data.sites`).

Invariant: `split_for(config)` is deterministic in the config (and the files' bytes); for the
post's settings it is exactly `diabetes.split`.
"""

from __future__ import annotations

from fedviz.config import Config
from fedviz.data import diabetes, standardise
from fedviz.data.sites import load_site, split_of
from fedviz.data.sources import deal
from fedviz.data.table import Split
from fedviz.errors import DataError


def split_for(config: Config) -> Split:
    """The experiment's data as the hospitals hold it. Raises `DataError` in words."""
    if config.dataset == "diabetes" and config.split == "contiguous":
        return diabetes.split(config.hospitals, config.seed)  # the post's, bit for bit
    if config.per_site:
        return _per_site(config)
    return deal(config)


def _per_site(config: Config) -> Split:
    """Each hospital's own file, read and split as its site would (`fedviz.data.sites`)."""
    if not config.site_paths or config.target is None:
        raise DataError(
            "each hospital's data stays on its own site: this run's files are not on this machine"
        )
    data = split_of(
        [load_site(path, config.target, config.test_fraction, config.seed) for path in config.site_paths]
    )
    if config.model == "logistic" and data.task != "classification":
        raise DataError(
            f"logistic regression needs a two-valued target; the sites' {data.target!r} is a number: use "
            "linear regression"
        )
    return data


def prepared(config: Config) -> Split:
    """The configured data, standardised in plaintext if it is in its own units: what the
    ring's standardisation gives, up to its 2^-56 grid (for previews, yardsticks and the
    preflight; a run standardises through the ring). Raises `DataError`."""
    data = split_for(config)
    return data if data.standardised else standardise.plaintext(data)
