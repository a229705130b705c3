"""Checks of the documentation site (docs/ and mkdocs.yml) that run without mkdocs.

- The Python examples of the Getting started, How-to and Theory pages run, each page in
  a fresh interpreter with JAX's default configuration (as a reader would run them),
  and print what the page says they print.
- Every public name of `hopkur`, `hopkur.data`, `hopkur.nn` and `hopkur.experiments`
  has an API reference entry.
- Every cross-reference to a hopkur object names an object that exists.
- Every page is in the navigation and every navigation entry exists.
- Every figure on the site exists and is written by a script in the repository.

How examples are marked up (see docs/development.md):

- a fenced block opened by a line "```python" at the start of a line runs; the blocks of
  a page run in order in one namespace;
- the first "```text" block after it (before the next Python block) is its expected
  output. Numbers are compared with a tolerance (one unit in the last printed digit, or
  the block's `rtol`/`atol`), everything else exactly up to whitespace; `...` matches
  anything;
- HTML comments configure the next Python block or the page:
  `<!-- test: skip -->` (do not run the next block),
  `<!-- test: requires hopkur.a hopkur.b -->` (the next block and all later ones need
  these names; if one is missing they are skipped with that reason),
  `<!-- test: tolerance rtol=0.05 atol=0.01 -->` (the next block's comparison),
  `<!-- test: env NAME=VALUE -->` (an environment variable for the page's interpreter),
  `<!-- test: slow -->` (the page's test is marked slow: run by `make test-slow` only).
"""

import dataclasses
import importlib
import importlib.util
import inspect
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"

# Pages whose Python examples are executed.
EXECUTED_PAGES = sorted(
    [DOCS / "getting-started.md"]
    + list((DOCS / "how-to").glob("*.md"))
    + list((DOCS / "theory").glob("*.md"))
)

# Modules whose public names must all appear in the API reference.
DOCUMENTED_MODULES = (
    "hopkur",
    "hopkur.data",
    "hopkur.nn",
    "hopkur.experiments",
    "hopkur.experiments.objects",
)

PAGE_TIMEOUT = 600  # seconds, per page


# --------------------------------------------------------------------------- parsing


@dataclasses.dataclass
class Block:
    code: str
    line: int  # 1-based line of the first code line in the Markdown file
    expected: str | None = None
    skip: bool = False
    requires: tuple[str, ...] = ()
    rtol: float | None = None
    atol: float | None = None


@dataclasses.dataclass
class Page:
    path: Path
    blocks: list[Block]
    env: dict[str, str]
    slow: bool = False


_MARKER = re.compile(r"<!--\s*test:\s*(.*?)\s*-->")
_FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")


def parse_page(path: Path) -> Page:
    """Extracts the Python blocks of a Markdown page with their expected outputs."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    env: dict[str, str] = {}
    slow = False
    pending: dict = {}
    requires: tuple[str, ...] = ()
    awaiting_output = False  # a text block belongs to the closest Python block above
    i = 0
    while i < len(lines):
        line = lines[i]
        for marker in _MARKER.findall(line):
            word, _, rest = marker.partition(" ")
            if word == "skip":
                pending["skip"] = True
            elif word == "requires":
                requires = requires + tuple(rest.split())
            elif word == "tolerance":
                for item in rest.split():
                    key, _, value = item.partition("=")
                    if key not in ("rtol", "atol"):
                        raise ValueError(f"{path}:{i + 1}: unknown tolerance {key!r}")
                    pending[key] = float(value)
            elif word == "env":
                key, _, value = rest.partition("=")
                env[key.strip()] = value.strip()
            elif word == "slow":
                slow = True
            else:
                raise ValueError(f"{path}:{i + 1}: unknown test marker {marker!r}")
        fence = _FENCE.match(line)
        if fence is None:
            i += 1
            continue
        language = fence.group(1)
        start = i + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise ValueError(f"{path}:{i + 1}: unterminated code block")
        body = "\n".join(lines[start:end]) + "\n"
        if language == "python":
            blocks.append(Block(body, start + 1, requires=requires, **pending))
            pending = {}
            awaiting_output = True
        elif language == "text" and awaiting_output:
            blocks[-1].expected = body
            awaiting_output = False
        i = end + 1
    return Page(path, blocks, env, slow)


# --------------------------------------------------------------------------- matching


_NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)\b"
_TOKEN = re.compile(rf"(\.\.\.|\s+|{_NUMBER})")
_NUMBER_RE = re.compile(_NUMBER)


def _printed_unit(token: str) -> float:
    """One unit in the last printed digit of a float token; 0 for integers."""
    mantissa, _, exponent = token.lower().partition("e")
    if "." not in mantissa:
        return 0.0 if not exponent else 10.0 ** int(exponent)
    decimals = len(mantissa.split(".")[1])
    return 10.0 ** (int(exponent or 0) - decimals)


def compare_output(
    expected: str, actual: str, rtol: float | None = None, atol: float | None = None
) -> str | None:
    """`None` if `actual` matches `expected`, else a description of the difference.

    Text must match up to whitespace (runs of spaces and newlines are equivalent);
    `...` matches anything. Numbers match if they differ by at most
    `max(rtol * |expected|, atol, one unit in the last printed digit)`; integers exactly
    unless `rtol` or `atol` is given.
    """
    pattern = []
    numbers = []
    for token in _TOKEN.split(expected.strip()):
        if not token:
            continue
        if token == "...":
            pattern.append(r"(?:.*?)")
        elif token.isspace():
            pattern.append(r"\s*")
        elif _NUMBER_RE.fullmatch(token):
            pattern.append(rf"({_NUMBER})")
            numbers.append(token)
        else:
            pattern.append(re.escape(token))
    match = re.fullmatch("".join(pattern), actual.strip(), flags=re.DOTALL)
    if match is None:
        return "the text differs"
    for want, got in zip(numbers, match.groups()):
        e, a = float(want), float(got)
        if math.isnan(e) or math.isnan(a):
            if math.isnan(e) and math.isnan(a):
                continue
            return f"expected {want}, got {got}"
        tol = max(
            (rtol if rtol is not None else 1e-3) * abs(e),
            atol or 0.0,
            _printed_unit(want),
        )
        if rtol is None and atol is None and _printed_unit(want) == 0.0:
            tol = 0.0  # integers: exact
        if not abs(a - e) <= tol * (1 + 1e-6):
            return f"expected {want}, got {got} (tolerance {tol:g})"
    return None


# --------------------------------------------------------------------------- running


_DRIVER = r"""
import contextlib, io, json, sys, time, traceback
source, result_path = sys.argv[1], sys.argv[2]
with open(source) as f:
    blocks = json.load(f)
namespace = {"__name__": "__main__"}
results = []
for block in blocks:
    buffer = io.StringIO()
    error = None
    # Pad with newlines so that tracebacks give the line in the Markdown file.
    code = compile("\n" * (block["line"] - 1) + block["code"], block["path"], "exec")
    start = time.process_time()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(code, namespace)
    except BaseException:
        error = traceback.format_exc()
    seconds = time.process_time() - start
    results.append({"out": buffer.getvalue(), "error": error, "cpu": seconds})
    if error is not None:
        break
with open(result_path, "w") as f:
    json.dump(results, f)
"""


def _missing(names: tuple[str, ...]) -> list[str]:
    missing = []
    for name in names:
        if _resolve(name) is None:
            missing.append(name)
    return missing


def _resolve(dotted: str):
    """The object named `dotted` (importing modules as needed), or `None`."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            try:
                obj = getattr(obj, part)
            except AttributeError:
                return None
        return obj
    return None


def run_page(page: Page, tmp_path: Path) -> tuple[list[dict], list[Block], str]:
    """Runs the page's blocks in a fresh interpreter; returns per-block results, the
    blocks that ran, and the reason blocks were left out (or "")."""
    to_run: list[Block] = []
    reason = ""
    for block in page.blocks:
        missing = _missing(block.requires)
        if missing:
            reason = (
                f"{page.path.relative_to(ROOT)}: the examples from line {block.line} "
                f"on need {', '.join(missing)}, not (yet) in hopkur"
            )
            break
        if not block.skip:
            to_run.append(block)
    source = tmp_path / "blocks.json"
    result_path = tmp_path / "results.json"
    display = str(page.path.relative_to(ROOT))
    source.write_text(
        json.dumps([{"code": b.code, "line": b.line, "path": display} for b in to_run])
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["JAX_PLATFORMS"] = "cpu"
    env.update(page.env)
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            os.environ.get("DOCS_W", "error"),
            "-c",
            _DRIVER,
            str(source),
            str(result_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT,
    )
    if proc.returncode != 0 or not result_path.exists():
        pytest.fail(
            f"the example runner for {display} crashed (exit {proc.returncode}):\n"
            f"{proc.stderr[-4000:]}"
        )
    return json.loads(result_path.read_text()), to_run, reason


def _page_params():
    params = []
    for path in EXECUTED_PAGES:
        page = parse_page(path)
        if not page.blocks:
            continue  # a page without Python examples has nothing to run
        marks = [pytest.mark.slow] if page.slow else []
        params.append(pytest.param(path, marks=marks, id=str(path.relative_to(DOCS))))
    return params


@pytest.mark.parametrize("path", _page_params())
def test_page_examples_run(path, tmp_path):
    page = parse_page(path)
    results, ran, reason = run_page(page, tmp_path)
    display = path.relative_to(ROOT)
    problems = []
    for block, result in zip(ran, results):
        where = f"{display}:{block.line}"
        if result["error"] is not None:
            problems.append(
                f"the example at {where} raised:\n{result['error']}\n"
                f"printed before the error:\n{result['out']}"
            )
        elif block.expected is not None:
            problem = compare_output(
                block.expected, result["out"], block.rtol, block.atol
            )
            if problem is not None:
                problems.append(
                    f"the example at {where} printed something else than the page "
                    f"says ({problem}).\n--- the page says:\n{block.expected}"
                    f"--- it printed:\n{result['out']}"
                )
    if problems:
        pytest.fail("\n\n".join(problems))
    assert len(results) == len(ran)
    if reason:
        pytest.skip(reason)


# ------------------------------------------------------------------- the checker


def test_compare_output_accepts_rounding_and_layout():
    assert compare_output("R = 0.998\nE = -62.8", "R = 0.999   \n E =  -62.9") is None
    assert compare_output("loss 1.2e-03", "loss 1.3e-03") is None
    assert compare_output("a ... z", "a anything at all z") is None
    assert compare_output("x = 3.14159", "x = 3.14200", rtol=1e-3) is None
    assert compare_output("count 1346", "count 1346") is None
    assert compare_output("v nan", "v nan") is None


def test_compare_output_rejects_differences():
    assert compare_output("R = 0.998", "R = 0.996") is not None
    assert compare_output("R = 0.998", "r = 0.998") is not None
    assert compare_output("count 1346", "count 1347") is not None
    assert compare_output("loss 1.2e-03", "loss 1.5e-03") is not None
    assert compare_output("a b", "a b c") is not None
    assert compare_output("v nan", "v 1.0") is not None


def test_parse_page_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- test: env A=1 -->\n<!-- test: slow -->\n"
        "```python\nprint(1)\n```\n"
        "Prints:\n```text\n1\n```\n"
        "<!-- test: skip -->\n```python\nboom\n```\n"
        "<!-- test: tolerance rtol=0.5 -->\n"
        "<!-- test: requires hopkur.nothing_here -->\n"
        "```python\nprint(2)\n```\n```text\n2\n```\n"
        "```bash\nls\n```\n"
    )
    parsed = parse_page(page)
    assert parsed.env == {"A": "1"} and parsed.slow
    first, skipped, last = parsed.blocks
    assert (first.code, first.line, first.expected) == ("print(1)\n", 4, "1\n")
    assert skipped.skip and skipped.expected is None
    assert last.rtol == 0.5 and last.requires == ("hopkur.nothing_here",)
    assert last.expected == "2\n"
    assert _missing(last.requires) == ["hopkur.nothing_here"]


# ---------------------------------------------------------------- API reference


def _documented_paths() -> set[str]:
    paths = set()
    for page in (DOCS / "api").glob("*.md"):
        for match in re.finditer(
            r"^:::\s+([\w.]+)", page.read_text(encoding="utf-8"), re.M
        ):
            paths.add(match.group(1))
    return paths


def _public_names(module) -> list[str]:
    return sorted(
        name
        for name, obj in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(obj)
    )


@pytest.mark.parametrize("module_name", DOCUMENTED_MODULES)
def test_api_reference_covers_public_names(module_name):
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        pytest.skip(f"{module_name} is not importable: {e}")
    documented = _documented_paths()
    missing = [
        f"{module_name}.{name}"
        for name in _public_names(module)
        if f"{module_name}.{name}" not in documented
    ]
    assert not missing, (
        "These public names have no API reference entry; add a line "
        "`::: <name>` to the matching page in docs/api/ (see docs/api/index.md):\n  "
        + "\n  ".join(missing)
    )


def test_api_entries_exist():
    stale = sorted(p for p in _documented_paths() if _resolve(p) is None)
    assert not stale, f"API entries for names that do not exist: {stale}"


def test_cross_references_resolve():
    bad = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"\[`(hopkur(?:\.\w+)+)`\]\[\]", text):
            if _resolve(match.group(1)) is None:
                bad.append(f"{page.relative_to(ROOT)}: {match.group(1)}")
    assert not bad, "Cross-references to objects that do not exist:\n  " + "\n  ".join(
        bad
    )


# ------------------------------------------------------------------- navigation


def _nav_pages() -> list[str]:
    text = MKDOCS_YML.read_text(encoding="utf-8")
    nav = text[text.index("\nnav:") :]
    return re.findall(r"(?:^\s*-\s+|:\s+)([\w/.-]+\.(?:md|ipynb))\s*$", nav, re.M)


def _site_pages() -> list[str]:
    pages = []
    for path in DOCS.rglob("*"):
        rel = path.relative_to(DOCS)
        if path.suffix in (".md", ".ipynb") and not rel.parts[0].startswith("_"):
            pages.append(rel.as_posix())
    return sorted(pages)


def test_navigation_lists_every_page():
    nav = _nav_pages()
    assert len(nav) == len(set(nav)), "a page is listed twice in the navigation"
    missing_files = sorted(set(nav) - set(_site_pages()))
    assert not missing_files, f"navigation entries without a page: {missing_files}"
    not_in_nav = sorted(set(_site_pages()) - set(nav))
    assert not not_in_nav, (
        f"pages missing from the navigation in mkdocs.yml: {not_in_nav}"
    )


def test_cli_reference_covers_subcommands():
    cli = importlib.import_module("hopkur.cli")
    index = (DOCS / "cli" / "index.md").read_text(encoding="utf-8")
    missing = [name for name in cli.COMMANDS if f"hopkur {name}" not in index]
    assert not missing, f"docs/cli/index.md does not mention: {missing}"


# ---------------------------------------------------------------------- figures


def _figure_links() -> list[tuple[Path, str]]:
    links = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"!\[[^\]]*\]\(([^)\s]+)", text):
            target = match.group(1)
            if "://" not in target:
                links.append((page, target))
    return links


def test_figures_exist_and_have_a_script():
    sources = [
        p.read_text(encoding="utf-8", errors="replace")
        for folder in (ROOT / "scripts", ROOT / "hopkur", ROOT / "benchmarks")
        if folder.exists()
        for p in folder.rglob("*.py")
    ]
    problems = []
    for page, target in _figure_links():
        path = (page.parent / target).resolve()
        where = f"{page.relative_to(ROOT)}: {target}"
        if not path.exists():
            problems.append(f"{where} does not exist (run `make figures`)")
        elif not any(path.stem in source for source in sources):
            problems.append(f"{where} is not written by any script in the repository")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------- full build


@pytest.mark.slow
def test_mkdocs_strict_build(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]


if __name__ == "__main__":
    # `python tests/test_docs_examples.py docs/how-to/page.md ...` runs the examples of
    # the given pages and prints what each block printed (for writing expected output).
    import tempfile

    for name in sys.argv[1:]:
        parsed = parse_page(Path(name).resolve())
        with tempfile.TemporaryDirectory() as tmp:
            outputs, blocks, left_out = run_page(parsed, Path(tmp))
        for b, r in zip(blocks, outputs):
            print(f"--- {name}:{b.line} ({r['cpu']:.1f} s CPU)")
            print(r["out"], end="")
            if r["error"]:
                print(r["error"])
        if left_out:
            print(f"--- left out: {left_out}")


# ------------------------------------------------------------ the figure runner


def test_make_figures_runner(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location(
        "make_figures", ROOT / "scripts" / "make_figures.py"
    )
    assert spec is not None and spec.loader is not None
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    scripts, figures = tmp_path / "scripts", tmp_path / "figures"
    scripts.mkdir()
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    monkeypatch.setattr(runner, "SCRIPTS", scripts)
    monkeypatch.setattr(runner, "FIGURES", figures)
    writer = (
        "import sys\n"
        "from pathlib import Path\n"
        "name = 'a_fast.png' if '--fast' in sys.argv else 'a_full.png'\n"
        f"Path({str(figures)!r}, name).write_bytes(b'png')\n"
    )
    (scripts / "a.py").write_text(writer)
    (scripts / "b.py").write_text("raise SystemExit(3)\n")

    assert runner.main(["--fast"]) == 1  # b failed, a still ran
    out = capsys.readouterr().out
    assert (figures / "a_fast.png").exists() and not (figures / "a_full.png").exists()
    assert "a_fast.png" in out and "FAILED" in out and "total:" in out

    assert runner.main(["--only", "a"]) == 0
    assert (figures / "a_full.png").exists()
    assert runner.main(["--only", "nope"]) == 2
