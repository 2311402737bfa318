"""One module per command, each with ``register(app)``."""
