"""toyopt: multi-task gradient aggregation on the Liu et al. 2021 two-task toy."""
