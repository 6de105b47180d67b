"""The workspace's own rules: members, scripts, imports, dependencies, README and CI."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def member_dirs() -> list[Path]:
    """The core and every paper package folder."""
    papers = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())
    return [ROOT / "shared", *papers]


def pyproject(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def import_name(folder: Path) -> str:
    """The single import package under the member's src/ folder."""
    (pkg,) = [p.name for p in (folder / "src").iterdir() if (p / "__init__.py").is_file()]
    return pkg


PAPERS = [d for d in member_dirs() if d.parent.name == "packages"]


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_root_is_a_workspace_of_every_member():
    root = pyproject(ROOT)
    assert root["tool"]["uv"]["workspace"]["members"] == ["shared", "packages/*"]
    declared = {canonicalize_name(Requirement(r).name) for r in root["project"]["dependencies"]}
    members = {canonicalize_name(pyproject(d)["project"]["name"]) for d in member_dirs()}
    assert declared == members, "the root must depend on every member so `uv sync` installs all"


def test_one_console_script_per_paper_named_after_it_and_no_clashes():
    seen: dict[str, str] = {}
    for folder in PAPERS:
        scripts = pyproject(folder)["project"].get("scripts", {})
        assert list(scripts) == [folder.name], f"{folder.name} must declare exactly one script"
        for name in scripts:
            assert name not in seen, f"script {name} declared by {seen.get(name)} and {folder.name}"
            seen[name] = folder.name


@pytest.mark.parametrize("folder", PAPERS, ids=lambda p: p.name)
def test_paper_imports_only_itself_the_core_and_declared_dependencies(folder):
    own = import_name(folder)
    others = {import_name(d) for d in PAPERS} - {own}
    project = pyproject(folder)["project"]
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    problems = []
    for path in sorted((folder / "src").rglob("*.py")):
        for name in _top_level_imports(path):
            if name in others:
                problems.append(f"{path.relative_to(ROOT)} imports paper package {name}")
            if name == own or name in sys.stdlib_module_names or name in others:
                continue
            dists = {canonicalize_name(d) for d in providers.get(name, [name])}
            if not dists & declared:
                problems.append(
                    f"{path.relative_to(ROOT)} imports {name}, not a declared dependency"
                )
    for path in sorted((folder / "tests").rglob("*.py")):
        problems += [
            f"{path.relative_to(ROOT)} imports paper package {n}"
            for n in _top_level_imports(path) & others
        ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("folder", member_dirs(), ids=lambda p: p.name)
def test_member_installs_alone_with_plain_pip(folder, tmp_path):
    """pip (no uv) installs the member plus the core into a fresh venv; it imports and runs.

    The fresh environment sees the workspace environment's third-party packages through a
    .pth file and pip runs with --no-index, so this checks the packaging (metadata, build,
    entry point, declared dependencies satisfiable) without downloading torch again.
    """
    venv = tmp_path / "venv"
    subprocess.run(["uv", "venv", "--quiet", "--seed", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    workspace_site = next(p for p in sys.path if p.endswith("site-packages"))
    (site / "_workspace_third_party.pth").write_text(workspace_site + "\n")
    python = venv / "bin" / "python"
    targets = {str(ROOT / "shared"), str(folder)}
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-build-isolation",
            *sorted(targets),
        ],
        check=True,
        env={"PIP_CONFIG_FILE": "/dev/null", "PATH": f"{venv / 'bin'}:/usr/bin:/bin"},
    )
    name = import_name(folder)
    where = subprocess.run(
        [python, "-c", f"import {name}; print({name}.__file__)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(site) in where, f"{name} was not imported from the fresh environment: {where}"
    if folder in PAPERS:
        out = subprocess.run(
            [venv / "bin" / folder.name, "--help"], check=True, capture_output=True, text=True
        ).stdout
        assert f"usage: {folder.name}" in out


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart:start -->(.*?)<!-- quickstart:end -->", text, re.S)
    assert block, "README.md needs a <!-- quickstart:start/end --> block"
    lines = re.findall(r"^\s*(uv run [^#]+)", block.group(1), re.M)
    return [line.strip() for line in lines]


def test_readme_commands_exist_and_ci_runs_the_test_command():
    commands = _quickstart_commands()
    assert len(commands) == 2, commands
    reproduce, test = commands
    sessions = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "-f", str(ROOT / "noxfile.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    args = shlex.split(reproduce)
    assert args[:4] == ["uv", "run", "nox", "-s"], reproduce
    assert f"* {args[4]} " in sessions or f"- {args[4]} " in sessions, f"no nox session {args[4]}"
    assert test == "uv run pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^{re.escape(test)}\s*$", ci, re.M), (
        ".ci/run must run the README test command"
    )


@pytest.mark.parametrize("folder", member_dirs(), ids=lambda p: p.name)
def test_exported_requirements_match_the_lock(folder):
    """packages/<paper>/requirements.txt (for copying one package out) is current."""
    name = pyproject(folder)["project"]["name"]
    committed = folder / "requirements.txt"
    assert committed.is_file(), f"{committed} is missing: run `uv run nox -s locks`"
    fresh = subprocess.run(
        [
            "uv",
            "export",
            "--frozen",
            "--package",
            name,
            "--no-dev",
            "--no-hashes",
            "--no-emit-workspace",
            "--no-header",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    def pins(text: str) -> list[str]:
        return [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]

    assert pins(committed.read_text()) == pins(fresh), (
        f"{committed} is stale: run `uv run nox -s locks`"
    )
