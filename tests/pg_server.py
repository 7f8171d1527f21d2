"""A throwaway PostgreSQL server for the tests, on a temporary data directory and a free port.

Used two ways:

- by `.ci/run`: `python -m tests.pg_server start STATE_DIR` installs PostgreSQL from Debian's
  packages when no server binaries are found (as root only), starts a server and prints its
  DSN (also written to STATE_DIR/dsn); `python -m tests.pg_server stop STATE_DIR` stops it
  and removes the data directory. CI then exports the DSN as TEST_DATABASE_URL.
- by tests/conftest.py, when TEST_DATABASE_URL is not set: `PgServer().start()` for the
  session, so a plain `pytest` on a machine with PostgreSQL installed runs both backends.

The server runs as the `postgres` user when we are root (initdb refuses root), trusts local
connections (it listens on 127.0.0.1 only) and runs with fsync off: it holds test data only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=300 -c listen_addresses=127.0.0.1"
)


class PgUnavailable(RuntimeError):
    """PostgreSQL cannot be installed or started here; the message says why."""


def find_bin_dir() -> Path | None:
    """The directory holding initdb/pg_ctl: $PG_BIN, pg_config's, Debian's newest, or PATH."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += debian
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def install() -> None:
    """apt-get install postgresql (root only); raises PgUnavailable when that is impossible."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PgUnavailable("PostgreSQL is not installed and apt-get (as root) is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PgUnavailable(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One server: `start()` returns its DSN, `stop()` ends it and removes its files."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="ltx-pg-"))
        self.data = self.base / "data"
        self.port = 0
        self.bin_dir: Path | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=self.base)

    def start(self, *, may_install: bool = False) -> str:
        self.bin_dir = find_bin_dir()
        if self.bin_dir is None and may_install:
            install()
            self.bin_dir = find_bin_dir()
        if self.bin_dir is None:
            raise PgUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) found")
        if os.geteuid() == 0:
            self._as_postgres_user()
        done = self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                         "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")  # fmt: skip
        if done.returncode != 0:
            raise PgUnavailable(f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}")
        self.port = free_port()
        options = f"{SERVER_OPTIONS} -c port={self.port} -c unix_socket_directories={self.data}"
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"),
                         "-o", options, "-w", "-t", "60", "start")  # fmt: skip
        if done.returncode != 0:
            log = (self.base / "server.log").read_text(errors="replace")[-800:]
            raise PgUnavailable(f"pg_ctl start failed: {done.stderr.strip()} {log}")
        return self.dsn

    def _as_postgres_user(self) -> None:
        """Root: the data directory must belong to `postgres` (created if missing)."""
        done = subprocess.run(["id", "-u", "postgres"], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        shutil.chown(self.base, "postgres")
        # `postgres` must be able to reach it: a private parent (`mktemp -d` makes 0700 ones,
        # as .ci/run's state directory) gets search permission only, no listing.
        for parent in self.base.parents:
            mode = parent.stat().st_mode
            if mode & stat.S_IXOTH:
                break
            os.chmod(parent, stat.S_IMODE(mode) | stat.S_IXOTH)

    def stop(self) -> None:
        if self.bin_dir is not None and self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"start", "stop"}:
        print("usage: python -m tests.pg_server start|stop STATE_DIR", file=sys.stderr)
        return 2
    state = Path(argv[1])
    state.mkdir(parents=True, exist_ok=True)
    if argv[0] == "start":
        server = PgServer(state / "server")
        try:
            dsn = server.start(may_install=True)
        except PgUnavailable as exc:
            print(f"PostgreSQL unavailable: {exc}", file=sys.stderr)
            return 1
        (state / "dsn").write_text(dsn)
        (state / "bin").write_text(str(server.bin_dir))
        print(dsn)
        return 0
    server = PgServer(state / "server")
    with contextlib.suppress(OSError):
        server.bin_dir = Path((state / "bin").read_text())
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
