"""Kernel tests use the `core.testing` plugin's fixtures (make_app, app, client, login...)."""
