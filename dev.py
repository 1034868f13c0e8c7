"""Set up a virtual environment and run the bot or the test suite; needs only Python 3.11+.

python3 dev.py run [ARGS...]   run the bot (console on ./volunteer-bot.db when unconfigured)
python3 dev.py test [PYTEST ARGS...]   install the test dependencies, lint, type-check, test
python3 dev.py catalog [--check]   extract the messages and update every language's catalog
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VOLUNTEER_BOT_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_env(extra: str) -> None:
    """Create the venv and install the project (with ``extra``) when pyproject changed."""
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    spec = f".[{extra}]" if extra else "."
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + spec.encode()).hexdigest()
    stamp = VENV / ".installed"
    if stamp.exists() and digest in stamp.read_text().split():
        return
    quiet = ["--quiet"] if not os.environ.get("CI") else []
    subprocess.run([PY, "-m", "pip", "install", *quiet, "--upgrade", "pip"], check=True)
    subprocess.run([PY, "-m", "pip", "install", *quiet, "-e", spec], check=True, cwd=ROOT)
    with stamp.open("a") as fh:
        fh.write(digest + "\n")


def run(args: list[str]) -> int:
    """Run the bot."""
    ensure_env("")
    return subprocess.call([PY, "-m", "bot", *args])


def test(args: list[str]) -> int:
    """Lint, type-check and run every test; no tests collected is a failure."""
    ensure_env("test")
    for step in ([PY, "-m", "ruff", "check", "."], [PY, "-m", "mypy"]):
        if subprocess.call(step, cwd=ROOT):
            print(f"{' '.join(map(str, step[2:]))} failed", file=sys.stderr)
            return 1
    code = subprocess.call([PY, "-m", "pytest", *args], cwd=ROOT)
    if code == 5:
        print("pytest collected no tests: that is a failure", file=sys.stderr)
        return 1
    return code


def catalog(args: list[str]) -> int:
    """Extract the messages; bring each language's .po file up to date (or ``--check`` it)."""
    ensure_env("test")
    script = (
        "import sys; from bot.catalogs import sync; "
        "changed = sync(check='--check' in sys.argv[1:]); "
        "[print(p) for p in changed]; sys.exit(1 if changed and '--check' in sys.argv else 0)"
    )
    return subprocess.call([PY, "-c", script, *args], cwd=ROOT)


COMMANDS = {"run": run, "test": test, "catalog": catalog}


def main() -> int:
    """Dispatch ``run`` or ``test``."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must explain, not crash
        print("volunteer-bot needs Python 3.11 or newer", file=sys.stderr)
        return 2
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
