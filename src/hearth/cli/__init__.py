"""The `hearth` command: a thin client of the control API (and `hearth up`, the daemon)."""
