"""A real PostgreSQL 15 server as a supervised local process on 127.0.0.1, for tests and `make up`.

`Postgres(run_dir).start()` initdb's a cluster in `RUN/pgdata` the first time (later starts reuse
it, so data survives `restart()`), renders our settings into `pgdata/dtwin.conf` (loopback TCP
only, trust auth, durable commits), starts `postgres -D` through `processes` (log in
`RUN/logs/postgres.log`, PID in `RUN/pids/`) and returns once a real query succeeds. initdb and
postgres refuse to run as root, so as root they run as user `postgres`, which owns pgdata (setpriv
execs in place, so the recorded PID is the postmaster's). `PgServer` is the client half (DSNs, SQL
through psql, databases); alone it serves a server we did not start (`DTWIN_PG_DSN`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from dtwin_localcp import ports, processes
from dtwin_localcp.kubeapi import WaitTimeoutError, wait_until

NAME = "postgres"
OS_USER = "postgres"  # owns pgdata and runs the server when we are root
DEFAULT_BIN_DIR = Path("/usr/lib/postgresql/15/bin")


class PostgresError(RuntimeError):
    """The server could not be started, reached or stopped, or a SQL command failed."""


def find_bin_dir() -> Path:
    """`$DTWIN_PG_BIN_DIR`, else Debian's PostgreSQL 15 dir, else the newest installed, else PATH."""
    candidates = [Path(os.environ["DTWIN_PG_BIN_DIR"])] if os.environ.get("DTWIN_PG_BIN_DIR") else []
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    which = shutil.which("postgres")
    candidates += [DEFAULT_BIN_DIR, *versions, *([Path(which).parent] if which else [])]
    for path in candidates:
        if (path / "postgres").is_file() and (path / "initdb").is_file():
            return path
    raise PostgresError("no PostgreSQL server binaries found; install them with hack/install-services.sh")


def render_conf(port: int, *, timescaledb: bool = False) -> str:
    """Settings for a dev/test server, included from postgresql.conf; everything else is PG's default."""
    # Preloading is required to CREATE EXTENSION timescaledb; its telemetry would dial out.
    preload = "shared_preload_libraries = 'timescaledb'\ntimescaledb.telemetry_level = off\n" if timescaledb else ""
    return f"""\
# Rendered by dtwin_localcp.postgres at every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''  # TCP on loopback only: no socket path to collide or outgrow 107 bytes
max_connections = 200
shared_buffers = 256MB
work_mem = 8MB
maintenance_work_mem = 64MB
effective_cache_size = 1GB
# Durable exactly as in production: the platform promises zero loss of acknowledged readings.
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
max_wal_size = 1GB
checkpoint_timeout = 5min
jit = off  # compiling short test queries costs more than it saves
timezone = 'UTC'
lc_messages = 'C'
log_destination = 'stderr'  # stderr is RUN/logs/postgres.log
log_line_prefix = '%m [%p] %q%u@%d '
log_lock_waits = on
{preload}"""


def render_hba() -> str:
    """Trust for TCP from 127.0.0.1 only: no other host, no unix socket."""
    return "host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"


class PgServer:
    """A PostgreSQL server reachable on loopback: DSNs, SQL through `psql`, databases."""

    def __init__(self, port: int = 0, *, user: str = "postgres", password: str | None = None) -> None:
        self.host = ports.LOOPBACK
        self.port = port  # 0 until a Postgres has chosen one at start()
        self.user = user
        self.password = password

    @classmethod
    def from_dsn(cls, dsn: str) -> PgServer:
        """A server named by a `postgresql://user[:password]@127.0.0.1:port/...` URL (loopback only)."""
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgresql", "postgres") or parts.hostname not in ("127.0.0.1", "localhost"):
            raise PostgresError(f"not a loopback postgresql:// DSN: {dsn}")
        password = unquote(parts.password) if parts.password else None
        return cls(parts.port or 5432, user=unquote(parts.username or "postgres"), password=password)

    def dsn(self, dbname: str = "postgres") -> str:
        secret = f":{quote(self.password, safe='')}" if self.password else ""
        return f"postgresql://{quote(self.user, safe='')}{secret}@{self.host}:{self.port}/{dbname}"

    def sql(self, query: str, dbname: str = "postgres", timeout: float = 30.0) -> str:
        """Run `query` with psql (unaligned, tuples only) and return its output, stripped."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no stray PGHOST/PGSSLMODE
        env.update(PGCONNECT_TIMEOUT="3", PGAPPNAME="dtwin-localcp")
        argv = [_psql(), "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", self.dsn(dbname), "-c", query]  # -d takes a URL
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as err:
            raise PostgresError(f"psql timed out after {timeout:.0f} s: {query}") from err
        if out.returncode != 0:
            raise PostgresError(f"psql failed ({out.returncode}) on {query!r}: {out.stderr.strip()}")
        return out.stdout.strip()

    def is_ready(self) -> bool:
        """True when a real connection runs a query (not just an open port)."""
        try:
            return self.sql("SELECT 1", timeout=5) == "1"
        except PostgresError:
            return False

    def create_database(self, name: str) -> None:
        self.sql(f'CREATE DATABASE "{_checked(name)}"')

    def drop_database(self, name: str) -> None:
        """Drop `name` if it exists; WITH (FORCE) first terminates the sessions still connected to it."""
        self.sql(f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')

    @property
    def timescaledb_available(self) -> bool:
        """Whether `CREATE EXTENSION timescaledb` can work here (the code must also work without it)."""
        return self.sql("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'") == "1"


@functools.cache
def _psql() -> str:
    # The server's bin dir first: Debian's /usr/bin/psql is a Perl wrapper that costs ~50 ms a call.
    try:
        return str(find_bin_dir() / "psql")
    except PostgresError:
        return shutil.which("psql") or "psql"


def _checked(name: str) -> str:
    """Database names are interpolated into SQL, so only plain lower-case identifiers are accepted."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"invalid database name {name!r}: use [a-z_][a-z0-9_]*, at most 63 characters")
    return name


class Postgres(PgServer):
    """A PostgreSQL server we run from `run_dir` (layout: pgdata/, logs/, pids/, state.json)."""

    start_timeout = 60.0
    stop_timeout = 60.0

    def __init__(self, run_dir: Path, port: int | None = None, bin_dir: Path | None = None) -> None:
        super().__init__(port or 0)
        self.run_dir = run_dir.resolve()
        self._bin_dir = bin_dir
        self.timings: dict[str, float] = {}

    @property
    def bin_dir(self) -> Path:
        """Found on first use, so that stop() works even where no server binaries are installed."""
        self._bin_dir = self._bin_dir or find_bin_dir()
        return self._bin_dir

    @property
    def pgdata(self) -> Path:
        return self.run_dir / "pgdata"

    @property
    def log_path(self) -> Path:
        return processes.log_path(self.run_dir, NAME)

    @classmethod
    def attach(cls, run_dir: Path) -> Postgres:
        """The server started earlier from `run_dir`; raises PostgresError unless it answers queries."""
        try:
            state = json.loads((run_dir / "state.json").read_text())
            server = cls(run_dir, state["port"], Path(state["bin_dir"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise PostgresError(f"no PostgreSQL state in {run_dir}: {err!r}") from err
        if not (server.is_running() and server.is_ready()):
            raise PostgresError(f"the PostgreSQL server of {run_dir} is not running")
        return server

    def _tail(self) -> str:
        return f"--- last lines of {self.log_path} ---\n{processes.tail(self.run_dir, NAME)}"

    def is_running(self) -> bool:
        record = processes.read_record(self.run_dir, NAME)
        return record is not None and processes.is_alive(record)

    def _owned_argv(self, argv: Sequence[str | Path]) -> list[str]:
        """As root, run `argv` as the postgres user; setpriv execs (no fork), unlike runuser."""
        prefix = ["setpriv", f"--reuid={OS_USER}", f"--regid={OS_USER}", "--init-groups"] if os.geteuid() == 0 else []
        return [*prefix, *map(str, argv)]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, OS_USER, OS_USER)

    def _prepare_run_dir(self) -> None:
        processes.logs_dir(self.run_dir).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # mkdtemp dirs are 0700, and the server runs as `postgres`: let it reach pgdata
            self.run_dir.chmod(self.run_dir.stat().st_mode | 0o711)
            if blocked := [p for p in self.run_dir.parents if not p.stat().st_mode & 0o001]:
                raise PostgresError(f"user {OS_USER} cannot reach {self.pgdata}: chmod o+x {blocked[0]}")

    def _initdb(self) -> None:
        t0 = time.monotonic()
        self.pgdata.mkdir(mode=0o700)
        self._chown(self.pgdata)
        # --no-sync (initdb's own fsync, not the server's) saves ~1.5 s; only an OS crash right now could hurt.
        argv: list[str | Path] = [self.bin_dir / "initdb", "-D", self.pgdata, "-U", "postgres", "-E", "UTF8"]
        argv += ["--locale=C.UTF-8", "--auth=trust", "--no-sync", "--no-instructions"]
        out = subprocess.run(self._owned_argv(argv), capture_output=True, text=True, check=False)
        (processes.logs_dir(self.run_dir) / "initdb.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)  # so the next start() retries from scratch
            raise PostgresError(f"initdb failed ({out.returncode}):\n{out.stderr.strip()}")
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write("\ninclude 'dtwin.conf'\n")
        (self.pgdata / "pg_hba.conf").write_text(render_hba())
        self.timings["initdb"] = time.monotonic() - t0

    def _preload_timescaledb(self) -> bool:
        out = subprocess.run([self.bin_dir / "pg_config", "--pkglibdir"], capture_output=True, text=True)
        return out.returncode == 0 and (Path(out.stdout.strip()) / "timescaledb.so").is_file()

    def start(self) -> None:
        """Start the server (initdb first if needed); returns once it answers queries."""
        if self.is_running():
            raise PostgresError(f"PostgreSQL is already running from {self.run_dir}")
        t0 = time.monotonic()
        self._prepare_run_dir()
        if not (self.pgdata / "PG_VERSION").is_file():
            self._initdb()
        self.port = self.port or ports.free_port()
        (self.pgdata / "dtwin.conf").write_text(render_conf(self.port, timescaledb=self._preload_timescaledb()))
        (self.run_dir / "state.json").write_text(json.dumps({"port": self.port, "bin_dir": str(self.bin_dir)}) + "\n")
        record = processes.start(self.run_dir, NAME, self._owned_argv([self.bin_dir / "postgres", "-D", self.pgdata]))

        def ready() -> bool:
            if not processes.is_alive(record):
                raise PostgresError(f"postgres exited during startup:\n{self._tail()}")
            return self.is_ready()

        try:
            wait_until(ready, self.start_timeout, "PostgreSQL to accept queries", 0.1, self._tail)
        except (WaitTimeoutError, PostgresError) as err:
            processes.stop(self.run_dir, NAME, grace=5)
            raise PostgresError(str(err)) from err
        self.timings["start"] = time.monotonic() - t0

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster: end sessions, checkpoint, exit), then clean up."""
        record = processes.read_record(self.run_dir, NAME)
        if record is not None and processes.is_alive(record):
            # SIGINT is a fast shutdown; processes.stop() sends SIGTERM, a smart one that waits for clients.
            os.kill(record.pid, signal.SIGINT)
            with contextlib.suppress(WaitTimeoutError):
                wait_until(lambda: not processes.is_alive(record), self.stop_timeout, "PostgreSQL to shut down")
        processes.stop(self.run_dir, NAME, grace=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster, then its children, as a hard crash would; the next start() recovers."""
        record = processes.read_record(self.run_dir, NAME)
        if record is not None and processes.is_alive(record):
            # PostgreSQL's children lead process groups of their own (killpg would miss them), and
            # backends left behind by a lone killed postmaster hold its shared memory: no restart.
            victims = [record, *_children(record.pid)]
            for victim in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim.pid, signal.SIGKILL)
            wait_until(lambda: not any(map(processes.is_alive, victims)), 10, "the killed PostgreSQL to exit")
        processes.stop(self.run_dir, NAME)  # removes the PID file


def _children(ppid: int) -> list[processes.ProcessRecord]:
    """The processes whose parent is `ppid` (all of PostgreSQL's are the postmaster's)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):  # a process may exit while we read it
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == ppid:
                found.append(processes.ProcessRecord(NAME, int(stat.parent.name), None))
    return found
