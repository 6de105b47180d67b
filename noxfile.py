"""Nox sessions for the reprozoo workspace.

Packages are discovered from `packages/*`, so a new paper needs no edit here.

    nox -l                              # list sessions
    nox -s lint                         # ruff format check + ruff check
    nox -s "tests(petal)"               # one package's tests, in an env with only its deps
    nox -s "reproduce(petal)"           # embedded-default reproduction -> results/petal/
    nox -s "reproduce(petal)" -- --scale paper --data-root /data   # extra args pass through
    nox -s report                       # results/*/*.json -> REPRODUCTION.md
    nox -s locks                        # packages/*/requirements.txt for copying one package out
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = sorted(p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


def _sync(session: nox.Session, package: str) -> None:
    """Install exactly `package`'s locked dependencies (and the package) into the session env."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--package",
        package,
        "--no-dev",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        external=True,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff format check and lint, with the root configuration."""
    session.install("ruff")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session
@nox.parametrize("package", [nox.param(p, id=p) for p in ["reprozoo", *PACKAGES]])
def tests(session: nox.Session, package: str) -> None:
    """One member's tests in an environment holding only that member's dependencies."""
    _sync(session, package)
    session.install("pytest")
    path = "shared/tests" if package == "reprozoo" else f"packages/{package}/tests"
    session.run("pytest", path, *session.posargs)


@nox.session
@nox.parametrize("package", [nox.param(p, id=p) for p in PACKAGES])
def reproduce(session: nox.Session, package: str) -> None:
    """A package's embedded-default reproduction; results go to results/<package>/.

    Every package's `reproduce` writes its records to results/<package>/ by default (and its
    checkpoints under runs/, which git ignores); extra arguments after `--` pass through.
    """
    _sync(session, package)
    session.run(package, "reproduce", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Render every result record under results/ into REPRODUCTION.md."""
    _sync(session, "reprozoo")
    session.run(
        "python", "-m", "reprozoo.results", "--results", "results", "--out", "REPRODUCTION.md"
    )


@nox.session(venv_backend="none")
def locks(session: nox.Session) -> None:
    """Export each package's pinned requirements (for copying one package out)."""
    for package in ["reprozoo", *PACKAGES]:
        folder = "shared" if package == "reprozoo" else f"packages/{package}"
        session.run(
            "uv",
            "export",
            "--frozen",
            "--package",
            package,
            "--no-dev",
            "--no-hashes",
            "--no-emit-workspace",
            "--output-file",
            f"{folder}/requirements.txt",
            external=True,
        )
