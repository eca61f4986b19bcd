"""A throw-away PostgreSQL server for the tests that run the store on both backends.

``PostgresCluster.start`` runs Debian's ``initdb`` in a temporary folder (as the ``postgres``
user when the tests run as root: the server refuses to run as root), starts the server on a
free port of 127.0.0.1 with its socket in that folder, and ``stop`` removes it all. Each test
gets a fresh database (``new_database``). The URL carries a password although the cluster
trusts local connections, so the tests can check it is never shown.
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

USER = "wb"
PASSWORD = "not-shown-s3cret"


def postgres_bindir() -> Path | None:
    """The newest Debian PostgreSQL's bin folder (``apt-get install postgresql``), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """One server started by ``start``; raises RuntimeError saying why it could not start."""

    def __init__(self, *, durable: bool = False) -> None:
        """``durable``: fsync commits as a production server does (benchmarks); tests skip it."""
        self.durable = durable
        self.dir = Path(tempfile.mkdtemp(prefix="wb-pg-"))
        self.port = _free_port()
        self._names = itertools.count()
        self._as: list[str] = []

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode:
            log = self.dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}\n{tail}")

    def start(self) -> PostgresCluster:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install -y postgresql; scripts/setup.sh --test does it)")
        if os.geteuid() == 0:  # initdb and postgres refuse root: run them as the package's postgres user
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        data = self.dir / "data"
        self._run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync={'on' if self.durable else 'off'} "
                   "-c max_connections=300 -c shared_buffers=32MB")
        self._bindir = bindir
        self._run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.dir / "server.log"), "-w", "-t", "120", "start")
        return self

    def restart(self) -> None:
        """Stop the server (dropping every connection) and start it again."""
        self._run(str(self._bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-l", str(self.dir / "server.log"), "-w", "-t", "120", "restart")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database of its own."""
        name = f"wb_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self._bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
