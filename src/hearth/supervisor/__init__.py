"""Instance lifecycle: fork through zygotes, readiness, exits, stops. Knows nothing about HTTP."""

from hearth.supervisor.instance import Instance, InstanceState, StartError
from hearth.supervisor.logs import LogBook
from hearth.supervisor.supervisor import Supervisor

__all__ = ["Instance", "InstanceState", "LogBook", "StartError", "Supervisor"]
