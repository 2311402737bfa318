"""spmkit.infer."""
