"""mkdocs hook: the site renders its maths with no network.

MathJax is bundled rather than loaded from a CDN. `make docs-venv` installs the npm
package `mathjax` (its version is pinned in the Makefile) into `build/mathjax/`; this
hook adds that package's `es5/` folder to the site as `_static/mathjax/` (so
`mkdocs serve` has it too), and `mkdocs.yml` loads `_static/mathjax/tex-mml-chtml.js`.

After the build it checks the site and fails the build (any mode) when

- a page loads a script from another host (`<script src="https://...">` or `//host/`);
- the bundled `_static/mathjax/tex-mml-chtml.js` is missing from the site;
- a page with maths (`class="arithmatex"`) does not load the bundled MathJax.

The checks are plain functions of the HTML (`remote_scripts`, `site_problems`), tested
in `tests/test_docs_offline.py` without mkdocs. This module is imported by mkdocs only,
never by hopkur.
"""

import html.parser
import logging
from pathlib import Path


log = logging.getLogger("mkdocs.hooks.offline_maths")

# Relative to the folder of mkdocs.yml.
MATHJAX_SOURCE = Path("build/mathjax/node_modules/mathjax/es5")
SITE_FOLDER = "_static/mathjax"
ENTRY = f"{SITE_FOLDER}/tex-mml-chtml.js"
# The parts of es5/ that tex-mml-chtml.js uses or loads on demand (fonts, TeX
# extensions, the menu's accessibility and speech modules). Left out: the other combined
# builds, node-main.js, and latest.js, a loader that fetches MathJax from CDNs.
BUNDLE = (
    "tex-mml-chtml.js",
    "core.js",
    "loader.js",
    "startup.js",
    "a11y",
    "adaptors",
    "input",
    "output",
    "sre",
    "ui",
)


class _Scripts(html.parser.HTMLParser):
    """The `src` of every `<script>` of a page, and whether it has maths."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sources: list[str] = []
        self.has_maths = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.sources.append(str(attributes["src"]).strip())
        classes = (attributes.get("class") or "").split()
        if "arithmatex" in classes:
            self.has_maths = True


def _parse(page: str) -> _Scripts:
    parser = _Scripts()
    parser.feed(page)
    parser.close()
    return parser


def is_remote(url: str) -> bool:
    """True for a URL on another host: with a scheme (`https:`, `data:` aside) or
    protocol-relative (`//host/...`)."""
    url = url.strip().lower()
    if url.startswith("//"):
        return True
    scheme, sep, _ = url.partition(":")
    return bool(sep) and scheme.isalpha() and scheme not in ("data", "blob")


def remote_scripts(page: str) -> list[str]:
    """The `src` of every `<script>` of an HTML page that is loaded from another
    host."""
    return [src for src in _parse(page).sources if is_remote(src)]


def site_problems(site_dir: Path) -> list[str]:
    """Every reason why the built site in `site_dir` would not render its maths
    offline (empty when it would)."""
    problems = []
    if not (site_dir / ENTRY).is_file():
        problems.append(
            f"the bundled MathJax `{ENTRY}` is missing from the site; run "
            "`make docs-venv`, which installs it into build/mathjax/"
        )
    for path in sorted(site_dir.rglob("*.html")):
        name = path.relative_to(site_dir).as_posix()
        page = _parse(path.read_text(encoding="utf-8", errors="replace"))
        for src in page.sources:
            if is_remote(src):
                problems.append(f"{name} loads a remote script: {src}")
        if page.has_maths and not any(
            src.split("?")[0].endswith(ENTRY) for src in page.sources
        ):
            problems.append(f"{name} has maths but does not load `{ENTRY}`")
    return problems


def _mathjax_source(config) -> Path:
    return Path(config.config_file_path).parent / MATHJAX_SOURCE


def on_files(files, config):
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    source = _mathjax_source(config)
    if not (source / "tex-mml-chtml.js").is_file():
        raise PluginError(
            f"MathJax is not installed: {source}/tex-mml-chtml.js is missing. Run "
            "`make docs-venv` (npm installs it into build/mathjax/)."
        )
    for part in BUNDLE:
        top = source / part
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            if path.is_file():
                uri = f"{SITE_FOLDER}/{path.relative_to(source).as_posix()}"
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_post_build(config):
    from mkdocs.exceptions import PluginError

    problems = site_problems(Path(config.site_dir))
    if problems:
        raise PluginError(
            "The site would not render its maths offline:\n- " + "\n- ".join(problems)
        )
    log.info("offline maths: every page loads MathJax from the site itself")
