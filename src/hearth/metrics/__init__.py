"""Monitoring: what the gateway and the control plane counted, as history, Prometheus
metrics, access log lines and (optionally) OpenTelemetry spans."""

from hearth.metrics.history import History, Point
from hearth.metrics.tally import Tally

__all__ = ["History", "Point", "Tally"]
