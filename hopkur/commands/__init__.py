"""Subcommands of the `hopkur` command (see `hopkur.cli`)."""
