"""Pure scaling decisions: observations in, actions out. No I/O."""

from hearth.autoscaler.decide import (
    Decision,
    InstanceLoad,
    Observation,
    Window,
    backoff,
    decide,
)

__all__ = ["Decision", "InstanceLoad", "Observation", "Window", "backoff", "decide"]
