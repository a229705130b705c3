"""The one error type of the `hopkur` subcommands."""


class UsageError(Exception):
    """A bad flag, value or file, or an operating-system failure on one: reported as
    one line, exit code 2."""
