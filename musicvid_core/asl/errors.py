"""The errors of the ASL interpreter: what a caller catches, and the error in flight inside a run.

:class:`ExecutionFailed` ends a run; :class:`InvalidDefinition` (a ValueError) refuses a definition when
a :class:`~musicvid_core.asl.machine.StateMachine` is built; :class:`StatesError` is an ASL error
(``States.Runtime``, a task's class name, ...) travelling to the Retry and Catch that match on it.
"""

from __future__ import annotations

__all__ = ["ExecutionFailed", "InvalidDefinition", "StatesError"]


class ExecutionFailed(Exception):
    """The execution ended in a Fail state or with an error that no Catch handled."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(error, cause)  # both in args, so the exception pickles
        self.error = error
        self.cause = cause

    def __str__(self) -> str:
        return f"{self.error}: {self.cause}" if self.cause else self.error


class InvalidDefinition(ValueError):
    """The definition is malformed or uses ASL outside the supported subset (raised on construction)."""


class StatesError(Exception):
    """An ASL error in flight: what Retry and Catch match on. ``state`` is where it arose."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(error, cause)
        self.error = error
        self.cause = cause
        self.state: str | None = None
