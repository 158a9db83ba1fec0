"""A real PostgreSQL server for tests: Debian's binaries (``/usr/lib/postgresql/<v>/bin``),
``initdb`` into a temporary folder, started with ``pg_ctl`` on a free loopback port with its
unix socket inside that folder, and stopped (``pg_ctl stop -m fast``) and removed at the end.

As root the server runs as the ``postgres`` user (``runuser -u postgres --``), which must own
the folder; otherwise as the current user. Authentication: ``trust`` on loopback for every
role but ``PASSWORD_ROLE``, which must give its password (scram-sha-256), so tests can check
that a password never shows up in an error. The server is for tests only: no fsync.

``python -m tests.pg`` starts one, prints its URL and waits for Ctrl-C.
"""

from __future__ import annotations

import glob
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PASSWORD_ROLE = "rr_password"
PASSWORD = secrets.token_hex(12)  # PASSWORD_ROLE's, new each session
SUPERUSER = "postgres"
_NAMES = itertools.count(1)


class PostgresUnavailable(RuntimeError):
    """The server could not be started here (binaries missing, or it failed): the message
    says why and how to install it."""


def find_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<v>/bin`` with ``initdb`` (or ``$RAYROLLOUT_PG_BIN``)."""
    forced = os.environ.get("RAYROLLOUT_PG_BIN")
    if forced:
        candidates = [forced]
    else:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                            key=lambda p: int(Path(p).parent.name) if Path(p).parent.name
                            .isdigit() else 0, reverse=True)
    for c in candidates:
        if (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin: the "
        "store tests need a real server. Install it with `scripts/setup.sh --system` (Debian "
        "package postgresql), or set RAYROLLOUT_PG_BIN to a folder holding initdb and pg_ctl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; ``url(db)`` connects to database ``db`` as the superuser."""

    folder: Path
    port: int
    bin: Path
    as_postgres: bool

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        _run(self, "pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")


def _run(server_or_bin: PostgresServer | tuple[Path, bool], tool: str, *args: str,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    bin_, as_pg = ((server_or_bin.bin, server_or_bin.as_postgres)
                   if isinstance(server_or_bin, PostgresServer) else server_or_bin)
    cmd = [str(bin_ / tool), *args]
    if as_pg:
        cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        said = (r.stderr or r.stdout)[-2000:]
        raise PostgresUnavailable(f"{tool} failed ({r.returncode}): {said}")
    return r


def sql(url: str, *statements: str) -> None:
    """Run ``statements`` at ``url`` (autocommit: CREATE DATABASE may be among them)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for s in statements:
            conn.execute(s.encode())


def new_database(url: str, template: str | None = None, owner: str | None = None) -> str:
    """A new database on the server of ``url`` (an empty one, or a copy of ``template``, owned
    by ``owner`` if given); returns ``url`` pointing at it."""
    name = f"t{os.getpid()}_{next(_NAMES)}"
    sql(url, f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")
        + (f" OWNER {owner}" if owner else ""))
    return url.rsplit("/", 1)[0] + "/" + name


HBA = f"""# written by tests/pg.py
local all all trust
host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""


def start() -> PostgresServer:
    """Start a server (see the module docstring)."""
    bin_ = find_bin()
    as_pg = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="rayrollout-pg-"))
    if as_pg:
        shutil.chown(folder, SUPERUSER, SUPERUSER)
    folder.chmod(0o700)
    try:
        _run((bin_, as_pg), "initdb", "-D", str(folder / "data"), "-U", SUPERUSER,
             "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
        hba = folder / "data" / "pg_hba.conf"
        hba.write_text(HBA)  # written as root: the server reads it as its owner
        if as_pg:
            shutil.chown(hba, SUPERUSER, SUPERUSER)
        for attempt in range(3):  # the free port may be taken before the server binds it
            port = free_port()
            opts = (f"-h 127.0.0.1 -p {port} -k {folder} -F -c full_page_writes=off "
                    "-c synchronous_commit=off -c max_connections=200")
            try:
                _run((bin_, as_pg), "pg_ctl", "-D", str(folder / "data"), "-l",
                     str(folder / "log"), "-o", opts, "-w", "-t", "60", "start")
                break
            except PostgresUnavailable:
                if attempt == 2:
                    raise
    except BaseException as e:
        log = folder / "log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(e, PostgresUnavailable):
            raise PostgresUnavailable(f"{e}\n{tail}") from None
        raise
    server = PostgresServer(folder, port, bin_, as_pg)
    try:
        _wait(server)
        sql(server.url(), f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
    except BaseException:
        stop(server)
        raise
    return server


def _wait(server: PostgresServer, timeout_s: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=2):
                return
        except psycopg.OperationalError as e:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"the test server on port {server.port} did not "
                                          f"accept connections in {timeout_s:g} s: {e}") from None
            time.sleep(0.1)


def stop(server: PostgresServer) -> None:
    try:
        server.stop()
    finally:
        shutil.rmtree(server.folder, ignore_errors=True)


@contextmanager
def running() -> Iterator[PostgresServer]:
    server = start()
    try:
        yield server
    finally:
        stop(server)


if __name__ == "__main__":
    with running() as s:
        print(s.url(), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
