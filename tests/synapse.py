"""A real Synapse homeserver for end-to-end tests, started from the installed package.

``start_synapse(workdir)`` boots one on 127.0.0.1 on a free port with SQLite and relaxed rate
limits; ``Synapse.register`` creates users through the shared-secret admin API. The pytest
fixture ``synapse`` (session scope) skips when Synapse is missing, unless
``REQUIRE_E2E`` is set (CI sets it in .ci/run), where a missing or broken Synapse fails the run.
"""

import contextlib
import hashlib
import hmac
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SERVER_NAME = "localhost"
BOOT_TIMEOUT = 60.0
REQUIRE_ENV = "REQUIRE_E2E"

# Every rate limit raised far above what a test does; the stock ones allow ~10 messages.
_UNLIMITED = {"per_second": 10_000, "burst_count": 100_000}
RATE_LIMITS: dict[str, Any] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_registration_token_validity": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
    "rc_admin_redaction": _UNLIMITED,
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
    "rc_3pid_validation": _UNLIMITED,
    "rc_third_party_invite": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
    "rc_federation": {"window_size": 1000, "sleep_limit": 10_000, "reject_limit": 10_000},
    "rc_room_creation": _UNLIMITED,
    "rc_reports": _UNLIMITED,
    "rc_delayed_event_mgmt": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
}

LOG_CONFIG = """\
version: 1
formatters:
  plain: {format: "%(asctime)s %(levelname)s %(name)s: %(message)s"}
handlers:
  file: {class: logging.FileHandler, filename: "%s", formatter: plain}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
"""


class SynapseUnavailable(Exception):
    """Synapse is not installed or did not start."""


@dataclass(frozen=True)
class Account:
    """A registered user and its access token."""

    user_id: str
    localpart: str
    password: str
    access_token: str
    device_id: str


@dataclass
class Synapse:
    """A running homeserver."""

    url: str
    server_name: str
    shared_secret: str
    workdir: Path
    process: subprocess.Popen[bytes]

    def user_id(self, localpart: str) -> str:
        """The full user id of a local part on this server."""
        return f"@{localpart}:{self.server_name}"

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """One client-server API call; returns the JSON answer or raises HTTPError."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def register(
        self, localpart: str, *, displayname: str | None = None, admin: bool = False
    ) -> Account:
        """Create a user through the shared-secret admin API (which returns a token)."""
        password = secrets.token_urlsafe(12)
        nonce = self.request("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))  # fmt: skip
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        if displayname:
            body["displayname"] = displayname
        answer = self.request("POST", "/_synapse/admin/v1/register", body)
        return Account(
            user_id=answer["user_id"],
            localpart=localpart,
            password=password,
            access_token=answer["access_token"],
            device_id=answer["device_id"],
        )

    def log_tail(self, lines: int = 30) -> str:
        """The end of Synapse's log, for failure messages."""
        path = self.workdir / "homeserver.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server process (by its PID) and wait for it."""
        self.resume()  # a stopped process cannot act on SIGTERM
        stop_process(self.process)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and reap it; ``restart`` brings it back."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(BOOT_TIMEOUT)

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open and nothing is answered."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Start the server again on the same port and data (after ``kill`` or ``stop``)."""
        if self.process.poll() is None:
            self.stop()
        self.process = _launch(self.workdir)
        _wait_until_up(self)


def stop_process(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM a process we started, then SIGKILL it if it does not exit in time."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(grace)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(workdir: Path, port: int, shared_secret: str) -> Path:
    """A homeserver.yaml (written as JSON, which YAML reads) that boots in about a second."""
    from signedjson.key import generate_signing_key, write_signing_keys

    key_path = workdir / f"{SERVER_NAME}.signing.key"
    with key_path.open("w") as fh:
        write_signing_keys(fh, [generate_signing_key("a_test")])
    log_config = workdir / "log.config"
    log_config.write_text(LOG_CONFIG.replace("%s", str(workdir / "homeserver.log")))
    config: dict[str, Any] = {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(workdir / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(workdir / "homeserver.db")}},
        "log_config": str(log_config),
        "media_store_path": str(workdir / "media"),
        "signing_key_path": str(key_path),
        "registration_shared_secret": shared_secret,
        "enable_registration": False,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "bcrypt_rounds": 4,
        "presence": {"enabled": False},
        "caches": {"sync_response_cache_duration": 0},
        "url_preview_enabled": False,
        "enable_metrics": False,
        **RATE_LIMITS,
    }
    path = workdir / "homeserver.yaml"
    path.write_text(json.dumps(config, indent=1))
    return path


def start_synapse(workdir: Path) -> Synapse:
    """Boot a homeserver in ``workdir``; raises SynapseUnavailable if it cannot."""
    for module in ("synapse", "signedjson"):
        if importlib.util.find_spec(module) is None:
            raise SynapseUnavailable(
                f"the '{module}' package is not installed (pip install matrix-synapse)"
            )
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    shared_secret = secrets.token_hex(16)
    write_config(workdir, port, shared_secret)
    process = _launch(workdir)
    server = Synapse(f"http://127.0.0.1:{port}", SERVER_NAME, shared_secret, workdir, process)
    _wait_until_up(server)
    return server


def _launch(workdir: Path) -> subprocess.Popen[bytes]:
    """Start the homeserver configured in ``workdir`` (its output appended to stdout.log)."""
    with (workdir / "stdout.log").open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c",
             str(workdir / "homeserver.yaml")],
            cwd=workdir,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _wait_until_up(server: Synapse) -> None:
    """Return once the server answers; stop it and raise SynapseUnavailable if it never does."""
    process = server.process
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            server.request("GET", "/_matrix/client/versions")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    server.stop()
    stdout = (server.workdir / "stdout.log").read_text(errors="replace")[-2000:]
    raise SynapseUnavailable(
        f"Synapse did not start (exit code {process.returncode}):\n{stdout}\n{server.log_tail()}"
    )


def _started(workdir: Path) -> Synapse:
    try:
        return start_synapse(workdir)
    except SynapseUnavailable as exc:
        message = f"end-to-end Matrix tests need a local Synapse: {exc}"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{message} ({REQUIRE_ENV} is set, so this is a failure)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """One homeserver for the whole test session, stopped at the end."""
    server = _started(tmp_path_factory.mktemp("synapse"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """A homeserver for one test only, which it may kill, pause and restart."""
    server = _started(tmp_path_factory.mktemp("own-synapse"))
    try:
        yield server
    finally:
        server.stop()
