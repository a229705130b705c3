"""mkdocs hook: inserts the `--help` text of the `hopkur` command into pages.

A line `<!-- hopkur-help -->` in a page is replaced by the output of `hopkur --help`,
and `<!-- hopkur-help: NAME -->` by that of `hopkur NAME --help`, as a `text` block. The
help comes from the argparse parser itself (`hopkur.cli.build_parser`), so the command
reference cannot fall behind the flags. A subcommand that is not available is a build
warning (an error under `strict: true`).
"""

import contextlib
import io
import logging
import os
import re


log = logging.getLogger("mkdocs.hooks.cli_help")

_MARKER = re.compile(r"^<!--\s*hopkur-help(?::\s*([\w-]+))?\s*-->\s*$", re.M)


def _help(name: str | None) -> str | None:
    from hopkur.cli import build_parser

    parser = build_parser()
    argv = ["--help"] if name is None else [name, "--help"]
    if name is not None:
        subparsers = [
            action
            for action in parser._actions
            if action.__class__.__name__ == "_SubParsersAction"
        ]
        if not subparsers or name not in subparsers[0].choices:  # pyright: ignore
            return None
    buffer = io.StringIO()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"  # argparse wraps to the terminal width
    try:
        with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
            parser.parse_args(argv)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return buffer.getvalue()


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        text = _help(name)
        if text is None:
            log.warning(
                f"{page.file.src_uri}: `hopkur {name}` is not an available subcommand "
                f"(its module hopkur/commands/{name}.py is missing or fails to import)"
            )
            return f"`hopkur {name}` is not available in this build."
        return "```text\n" + text.rstrip() + "\n```"

    return _MARKER.sub(replace, markdown)
