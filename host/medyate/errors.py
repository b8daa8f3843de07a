"""Errors a user can act on. The CLI prints their message and exits non-zero,
without a traceback; anything else is a bug and keeps its traceback."""


class MedyateError(Exception):
    """A clear, user-facing error."""
