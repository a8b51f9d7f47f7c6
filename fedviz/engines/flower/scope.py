"""What the Flower engine runs today, said before anything starts.

Its nodes load the seed post's diabetes split, or each site's own CSV (standardised through
the encrypted ring), and train linear or logistic regression; the privacy remedies masks and
DP run there too. Built-in data dealt other ways, one CSV dealt out, and the shuffled ring
run in-process only. (Light: importing this does not import Flower.)
"""

from __future__ import annotations

from fedviz.config import Config


def refusal(config: Config) -> str | None:
    """Why the Flower engine cannot run `config`, in words; None if it can."""
    if not (config.is_the_posts_data or (config.per_site and config.site_paths)):
        return (
            "the Flower engine runs the post's diabetes data, dealt as the post deals it, or each site's own "
            "file (--site-data); other data and splits run in-process"
        )
    if config.shuffle_ring:
        return "the shuffled ring runs in-process only"
    return None
