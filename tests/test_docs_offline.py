"""The docs site renders its maths with no network: the checks of
docs/_hooks/offline_maths.py (which fail `make docs`), on small synthetic sites, and
mkdocs.yml loading only local scripts."""

import importlib.util
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


def _load_hook():
    path = ROOT / "docs" / "_hooks" / "offline_maths.py"
    spec = importlib.util.spec_from_file_location("offline_maths", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hook = _load_hook()

_MATHS = '<span class="arithmatex">\\(E = -\\tfrac12 g^\\top W g\\)</span>'


def _page(*scripts: str, body: str = _MATHS) -> str:
    tags = "\n".join(f'<script src="{src}" defer></script>' for src in scripts)
    return f"<!doctype html><html><head>{tags}</head><body>{body}</body></html>"


def _site(tmp_path: Path, pages: dict[str, str], asset: bool = True) -> Path:
    for name, text in pages.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    if asset:
        (tmp_path / hook.ENTRY).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / hook.ENTRY).write_text("/* MathJax */")
    return tmp_path


@pytest.mark.parametrize(
    "src",
    [
        "https://cdn.example.org/npm/mathjax@3/es5/tex-mml-chtml.js",
        "http://example.org/a.js",
        "//cdn.example.org/a.js",
        "HTTPS://EXAMPLE.ORG/A.JS",
        "  https://example.org/padded.js",
    ],
)
def test_remote_script_is_found(src):
    assert hook.is_remote(src)
    assert hook.remote_scripts(_page("assets/javascripts/bundle.js", src)) == [
        src.strip()
    ]


@pytest.mark.parametrize(
    "src",
    [
        "_static/mathjax/tex-mml-chtml.js",
        "../_static/mathjax/tex-mml-chtml.js",
        "/_static/mathjax.js",
        "assets/javascripts/bundle.f1b9e5b3.min.js",
        "data:text/javascript,void 0",
    ],
)
def test_local_script_is_not_remote(src):
    assert not hook.is_remote(src)
    assert hook.remote_scripts(_page(src)) == []


def test_links_and_inline_scripts_are_not_scripts_loaded_from_elsewhere():
    page = _page(
        "_static/mathjax/tex-mml-chtml.js",
        body='<a href="https://example.org">x</a><script>let u = "https://x";</script>'
        '<link rel="stylesheet" href="https://fonts.example.org/css">',
    )
    assert hook.remote_scripts(page) == []


def test_a_good_site_has_no_problems(tmp_path):
    site = _site(
        tmp_path,
        {
            "index.html": _page("_static/mathjax.js", hook.ENTRY),
            "theory/hopfield/index.html": _page(
                "../../_static/mathjax.js", f"../../{hook.ENTRY}?v=1"
            ),
            "no-maths/index.html": _page(body="<p>text</p>"),
        },
    )
    assert hook.site_problems(site) == []


def test_a_remote_script_fails(tmp_path):
    cdn = "https://cdn.example.org/npm/mathjax@3/es5/tex-mml-chtml.js"
    site = _site(tmp_path, {"index.html": _page(hook.ENTRY, cdn)})
    assert hook.site_problems(site) == [f"index.html loads a remote script: {cdn}"]


def test_a_missing_bundle_fails(tmp_path):
    site = _site(tmp_path, {"index.html": _page(hook.ENTRY)}, asset=False)
    (problem,) = hook.site_problems(site)
    assert hook.ENTRY in problem and "missing" in problem


def test_a_page_with_maths_but_no_bundled_mathjax_fails(tmp_path):
    site = _site(tmp_path, {"a/index.html": _page("_static/mathjax.js")})
    assert hook.site_problems(site) == [
        f"a/index.html has maths but does not load `{hook.ENTRY}`"
    ]


def test_mkdocs_yml_loads_only_local_scripts_and_the_hook():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    scripts = config["extra_javascript"]
    assert not [src for src in scripts if hook.is_remote(src)]
    assert hook.ENTRY in scripts
    assert "docs/_hooks/offline_maths.py" in config["hooks"]
