"""The documentation cannot rot: the MkDocs site builds with --strict (every link, anchor, nav entry, included file
and API reference resolves), the README stays short, every command has its page, and every repository path the
pages quote exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Quoted paths that are meant not to exist, each with its reason.
NOT_FILES = {
    "benchmarks/ROUTES.md": "what bench_routes.py writes; docs/targets.md says its run was stopped before the end",
    "recipes/x.yaml": "the file name in an example error message (recipes/README.md)",
}


def _pages() -> list[Path]:
    # README.md and the files the site includes (recipes/README.md, calibration/README.md) quote paths too.
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md")), ROOT / "recipes" / "README.md",
            ROOT / "calibration" / "README.md"]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    # No mkdocs: install the [test] extra (mkdocs-material, mkdocstrings[python]).
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert (site / "index.html").is_file()
    # mkdocstrings rendered the Python API from the docstrings.
    api = (site / "api" / "index.html").read_text()
    for name in ("export", "load", "evaluate", "bench", "preprocess_images"):
        assert f"edgedeploy.api.{name}" in api, name


def test_readme_fits_on_a_few_screens() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail to docs/"


def test_readme_links_resolve() -> None:
    # MkDocs checks the site's links; the README is not part of the site, so its links are checked here.
    readme = (ROOT / "README.md").read_text()
    anchors = {re.sub(r"[^\w\s-]", "", h).strip().lower().replace(" ", "-")
               for h in re.findall(r"^#+ (.*)$", readme, re.M)}
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", readme):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        if path and not (ROOT / path).exists() or not path and anchor not in anchors:
            broken.append(target)
    assert not broken, broken


def test_every_command_has_a_page_with_an_example() -> None:
    done = subprocess.run([sys.executable, "-m", "edgedeploy", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    commands = re.findall(r"^  ([a-z][a-z0-9-]*)\s", done.stdout.split("Commands:", 1)[1], re.M)
    assert len(commands) >= 16, commands
    nav = (ROOT / "mkdocs.yml").read_text()
    for command in commands:
        page = DOCS / "commands" / f"{command}.md"
        assert page.is_file(), f"edgedeploy {command} has no page docs/commands/{command}.md"
        assert f"commands/{command}.md" in nav, f"docs/commands/{command}.md is not in mkdocs.yml's nav"
        blocks = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", page.read_text(), re.S))
        assert f"edgedeploy {command}" in blocks, f"docs/commands/{command}.md shows no `edgedeploy {command}` line"


def test_quoted_repository_paths_exist() -> None:
    path = re.compile(r"(?<![\w./-])((?:edgedeploy|tests|benchmarks|recipes|calibration|docs|\.ci|\.github)/[\w./-]*)")
    dotted = re.compile(r"(?<![\w./-])(edgedeploy(?:\.\w+)+)")
    missing = []
    for page in _pages():
        for span in re.findall(r"`([^`\n]+)`", page.read_text()):
            for m in path.finditer(span):
                quoted = m.group(1).rstrip(".")
                if span[m.end():m.end() + 1] in ("<", "*") or quoted in NOT_FILES:
                    continue  # a pattern (`converters/<runtime>/`), not a path
                if not (ROOT / quoted).exists():
                    missing.append(f"{page.relative_to(ROOT)}: {quoted}")
            for m in dotted.finditer(span):
                # A module, or an attribute of one.
                parts = m.group(1).split(".")
                if not any(ROOT.joinpath(*parts[:n]).with_suffix(".py").is_file()
                           or (ROOT.joinpath(*parts[:n]) / "__init__.py").is_file()
                           for n in (len(parts), len(parts) - 1)):
                    missing.append(f"{page.relative_to(ROOT)}: {m.group(1)}")
    assert not missing, "quoted paths that do not exist (renamed or removed?):\n" + "\n".join(missing)
