"""The data: built-in sets (diabetes, breast cancer) and the user's CSV (`sources`), each
site's own file (`sites`), how rows are dealt to hospitals (`splits`, `deal`), the
per-hospital view (`table.Split`) and federated standardisation (`standardise`). `split(hospitals, seed)` is the seed post's diabetes split;
`split_for(config)` any configured one."""

from fedviz.data.deal import prepared, split_for
from fedviz.data.diabetes import FEATURES, load_diabetes_xy, split
from fedviz.data.table import Split

__all__ = ["FEATURES", "Split", "load_diabetes_xy", "prepared", "split", "split_for"]
