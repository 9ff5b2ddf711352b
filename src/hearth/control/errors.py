"""The control plane's refusals, which the API turns into answers."""


class DeployError(Exception):
    """A change was refused or failed; what served before keeps serving."""


class NotFound(KeyError):
    """No function by that name."""
