"""Hearth: a self-hosted serverless platform for Python that keeps each function's context warm."""

__version__ = "0.1.0"
