"""spmkit.io."""
