"""The control plane: what should run, brought about by one reconciler.

The data plane (gateway, supervisor) posts events to the inbox; the reconciler reads
them and issues commands back; rollouts change which releases serve; the API reads views.
"""

from hearth.control.errors import DeployError, NotFound
from hearth.control.plane import ControlPlane

__all__ = ["ControlPlane", "DeployError", "NotFound"]
