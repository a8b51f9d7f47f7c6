"""The protections people would pick instead, compared with fedviz on the same task: one
module per protection behind `base.Protection` (train the task, report a `base.Measured`)."""
