"""Zygotes: processes with an environment's packages imported that fork instances on request."""
