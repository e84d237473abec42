"""Errors that services raise when a request breaks a rule of the domain."""

from __future__ import annotations


class ServiceError(Exception):
    """A rule was broken; ``message`` is safe and meant to be shown to the user as it is.

    Like Django's ``ValidationError`` it may name the form ``field`` it is about, so a view can
    put it next to that field (``form.add_error(err.field, err.message)``); ``code`` lets tests
    and the API tell errors apart without matching on wording.
    """

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code

    def __str__(self) -> str:
        return self.message
