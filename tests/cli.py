"""Running the real command line in a subprocess."""

import os
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bot(
    *args: str, stdin: str = "", cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bot ARGS`` in ``cwd`` with a clean VOLUNTEER_BOT_* environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VOLUNTEER_BOT_")}
    environ["PYTHONPATH"] = str(ROOT)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=timeout,
    )


def bot_bytes(*args: str, stdin: bytes, cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    """Like :func:`bot`, with raw bytes on stdin: returns the exit status, stdout and stderr."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VOLUNTEER_BOT_")}
    environ["PYTHONPATH"] = str(ROOT)
    run = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin, capture_output=True, cwd=cwd, env=environ, timeout=timeout,
    )  # fmt: skip
    return run.returncode, run.stdout.decode("utf-8"), run.stderr.decode("utf-8", "replace")


def console(url: str, user: str, *, cwd: Path, coordinator: bool = False,
            **env: str) -> subprocess.Popen[str]:  # fmt: skip
    """The console bot as ``user`` on ``url``, reading its script from stdin."""
    args = [sys.executable, "-m", "bot", "--as", user]
    if coordinator:
        args += ["--coordinator", user]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VOLUNTEER_BOT_")}
    environ.update(PYTHONPATH=str(ROOT), VOLUNTEER_BOT_STORAGE__URL=url, **env)
    return subprocess.Popen(args, cwd=cwd, env=environ, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def run_together(
    procs: list[tuple[subprocess.Popen[str], str]], timeout: float = 240
) -> list[str]:
    """Wait until every console answers, then hand them all their scripts at once.

    Returns each one's stdout and stderr; every process must exit 0.
    """
    for proc, _ in procs:
        assert proc.stdin is not None
        proc.stdin.write(":as ready\n")
        proc.stdin.flush()
    for proc, _ in procs:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "now acting as ready" in first, first + (proc.stderr.read() if proc.stderr else "")
    outputs: list[str] = [""] * len(procs)

    def talk(i: int, proc: subprocess.Popen[str], script: str) -> None:
        out, err = proc.communicate(script, timeout=timeout)
        outputs[i] = out + err

    threads = [threading.Thread(target=talk, args=(i, proc, script))
               for i, (proc, script) in enumerate(procs)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (proc, _), out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out
    return outputs
