"""Schedules (`[[schedule]]` in hearth.toml): `timing` decides when (pure), `runner` fires
due runs through the daemon's own gateway and records them, `call` is that request.

Only `timing` is imported here: hearth.spec validates cron expressions with it, and the
runner needs hearth.spec.
"""

from hearth.scheduler.timing import Due, cron_problem, due, next_due

__all__ = ["Due", "cron_problem", "due", "next_due"]
