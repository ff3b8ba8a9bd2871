"""Exception types: every user-facing failure is a `SessionrecError` with a one-line message."""


class SessionrecError(Exception):
    """Base class; the CLI prints its message on one line and exits non-zero."""

    def __str__(self) -> str:
        # One line even when the message embeds a library's multi-line error text.
        return " ".join(line.strip() for line in super().__str__().splitlines() if line.strip())


class DataError(SessionrecError):
    """A data file or directory is missing, malformed or unsafe."""


class UnsafeFileError(DataError):
    """A file asked to construct something other than plain data (would run code)."""


class ConfigError(SessionrecError):
    """An unknown model, hyper-parameter, option value or dataset name."""


class RunError(SessionrecError):
    """A run directory or checkpoint is missing, corrupted or belongs to another model."""
