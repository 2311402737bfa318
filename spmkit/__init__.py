"""spmkit: hierarchical vision backbones from YAML blueprints."""

__version__ = "0.1.0"
