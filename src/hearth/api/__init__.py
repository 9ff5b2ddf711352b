"""The control plane: a REST API (OpenAPI at /docs) over the daemon's functions."""

from hearth.api.app import create_app

__all__ = ["create_app"]
