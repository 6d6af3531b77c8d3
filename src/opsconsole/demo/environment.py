"""The whole demo environment: PostgreSQL, pooler proxy, long-running sessions, simulators,
and a generated config file that points the console at them (only the URLs differ from
production). Everything started here is stopped by `stop()`, which is idempotent and also
runs at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from opsconsole.demo.scenario import (
    DEFAULT_SCENARIO,
    N8N_WORKFLOWS,
    PROJECT_REF,
    SCENARIOS,
    VERCEL_PROJECT_ID,
    VERCEL_TEAM_ID,
    DemoSecrets,
    has,
)
from opsconsole.demo.sim import FaultPlan, Simulator
from opsconsole.demo.world import DemoWorld

WORKDIR_PREFIX = "opsconsole-demo-"
OWNER_FILE = "owner.pid"


def sweep_stale_workdirs() -> list[Path]:
    """Remove work dirs of demos whose process died without cleaning up (e.g. SIGKILL).

    Their postgres died with them (parent-death signal); only files are left.
    """
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            pid = int((path / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class DemoError(Exception):
    """The demo environment could not start; the message says why and what to do."""


class DemoEnvironment:
    def __init__(self, scenario: str = DEFAULT_SCENARIO, *, read_only: bool = False,
                 messages: int | None = None, sessions: bool = True, postgres: bool = True) -> None:
        if scenario not in SCENARIOS:
            raise DemoError(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self.read_only = read_only
        self.messages = messages
        self.with_sessions = sessions
        self.with_postgres = postgres
        self.secrets = DemoSecrets.for_scenario(scenario)
        self.faults = FaultPlan()
        self.world = DemoWorld(scenario)  # what the simulators share (demo/world.py)
        from opsconsole.demo.restore import DemoRestorer

        self.restorer = DemoRestorer()  # what a restore does to the demo database (demo/restore.py)
        self.restore_s = 10.0  # how long the simulated project stays RESTORING
        self.sims: dict[str, Simulator] = {}
        self.workdir: Path | None = None
        self.config_path: Path | None = None
        self.postgres: Any = None
        self.pooler: Any = None
        self.sessions: Any = None
        self.ready_s: float | None = None
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> DemoEnvironment:
        started = time.perf_counter()
        atexit.register(self.stop)
        try:
            sweep_stale_workdirs()
            self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
            (self.workdir / OWNER_FILE).write_text(f"{os.getpid()}\n")
            # 0711: others may traverse (the postgres system user, when we run as root) but not list;
            # the config inside is 0600.
            os.chmod(self.workdir, 0o711)
            self._start_sims()
            if self.with_postgres:
                self._start_postgres()
            self.config_path = self._write_config()
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.perf_counter() - started
        return self

    def _start_sims(self) -> None:
        from opsconsole.demo.sims import api, n8n, statuspage, supabase, twilio, vercel

        # Vercel first: the API's /health answers from the same world and reports what Vercel serves.
        vercel_sim = vercel.build(self.faults, self.scenario, self.secrets, world=self.world)
        builders: dict[str, Callable[[], Simulator]] = {
            "vercel": lambda: vercel_sim,
            "api": lambda: api.build(self.faults, self.scenario, self.secrets, world=self.world,
                                     version=lambda: vercel_sim.state.production_sha),
            "vercel-status": lambda: statuspage.build(self.faults, self.scenario, page="vercel"),
            "supabase-status": lambda: statuspage.build(self.faults, self.scenario, page="supabase"),
            "supabase-mgmt": lambda: supabase.build_management(self.faults, self.scenario, self.secrets,
                                                               world=self.world, restorer=self.restorer,
                                                               restore_s=self.restore_s),
            "supabase-project": lambda: supabase.build_project(self.faults, self.scenario, self.secrets,
                                                               world=self.world),
            "n8n": lambda: n8n.build(self.faults, self.scenario, self.secrets, world=self.world),
            "twilio": lambda: twilio.build(self.faults, self.scenario, self.secrets),
        }
        for name, build in builders.items():
            sim = build()
            sim.start()
            self.sims[name] = sim

    def _start_postgres(self) -> None:
        from opsconsole.demo.pooler import PoolerProxy
        from opsconsole.demo.postgres import DemoPostgres
        from opsconsole.demo.seed import seed
        from opsconsole.demo.sessions import LongRunningSessions

        assert self.workdir is not None
        self.postgres = DemoPostgres(base_dir=self.workdir)
        self.postgres.start()
        self.world.admin_dsn = self.postgres.admin_dsn
        kwargs: dict[str, Any] = {} if self.messages is None else {"messages": self.messages}
        seed(self.postgres.admin_dsn, self.scenario, self.secrets, **kwargs)
        self.pooler = PoolerProxy("127.0.0.1", self.postgres.port)
        self.restorer.attach(self.postgres, self.pooler, self.world)
        self.restorer.take_backup()  # "the backup": the database as seeded, before anything else touches it
        self._start_drills()
        self.pooler.start()
        if has(self.scenario, "pooler-slow"):  # Supavisor struggling: the pooler check warns
            self.pooler.set_mode("slow", delay_s=1.5)
        if self.with_sessions:
            self.sessions = LongRunningSessions(self.postgres, self.scenario, self.secrets)
            self.sessions.start()

    def _start_drills(self) -> None:
        """The migration and restore drills: the bad UPDATE after the backup, the API's broken column."""
        from opsconsole.demo.restore import missing_column_probe
        from opsconsole.demo.seed import corrupt

        assert self.postgres is not None
        if has(self.scenario, "data-corruption"):
            corrupt(self.postgres.admin_dsn)
        if has(self.scenario, "bad-migration"):  # the API still reads contacts.phone, renamed 40 min ago
            self.world.add_database_probe(missing_column_probe(lambda: self.world.admin_dsn, "contacts", "phone",
                                                               world=self.world, resolves="bad-migration"))
        if self.workdir is not None:
            self._write_reverts(self.workdir / "reverts")

    def _write_reverts(self, folder: Path) -> None:
        """[migrations] revert_dir of the demo: a .down.sql for the newest queue migration."""
        import psycopg

        folder.mkdir(exist_ok=True)
        name = "campaign_queue_source_and_locking"
        with psycopg.connect(self.postgres.admin_dsn) as conn:
            row = conn.execute("select version from supabase_migrations.schema_migrations where name = %s",
                               [name]).fetchone()
        if row is None:
            return
        version = row[0]
        (folder / f"{version}_{name}.down.sql").write_text(
            "-- Revert of campaign_queue_source_and_locking (kept beside the migration)\n"
            "drop index if exists public.campaign_queue_pending_idx;\n"
            "alter table public.campaign_queue drop column locked_at, drop column locked_by;\n", encoding="utf-8")

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.restorer.restoring.clear()
        for closer in (self.sessions, self.pooler):
            if closer is not None:
                try:
                    closer.close() if hasattr(closer, "close") else closer.stop()
                except Exception:
                    pass
        for sim in self.sims.values():
            try:
                sim.stop()
            except Exception:
                pass
        if self.postgres is not None:
            try:
                self.postgres.stop()
            except Exception:
                pass
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    def __enter__(self) -> DemoEnvironment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration ----------------------------------------------------------------
    def config_data(self) -> dict[str, Any]:
        s = self.secrets
        url = {name: sim.base_url for name, sim in self.sims.items()}
        data: dict[str, Any] = {
            "environment": {"name": "production (demo)", "read_only": self.read_only},
            "api": {"health_url": f"{url['api']}/health", "timeout_s": 5},
            "vercel": {"api_url": url["vercel"], "project_id": VERCEL_PROJECT_ID, "team_id": VERCEL_TEAM_ID,
                       "token": s.vercel_token, "status_url": url["vercel-status"]},
            "supabase": {"project_ref": PROJECT_REF, "api_url": url["supabase-project"],
                         "management_url": url["supabase-mgmt"], "status_url": url["supabase-status"],
                         "access_token": s.supabase_access_token, "service_role_key": s.service_role_key},
            "n8n": {"api_url": f"{url['n8n']}/api/v1", "api_key": s.n8n_api_key,
                    "workflows": list(N8N_WORKFLOWS)},
            "twilio": {"account_sid": s.twilio_account_sid, "auth_token": s.twilio_auth_token,
                       "api_url": url["twilio"], "monitor_url": url["twilio"]},
            "dlq": {"table": "public.dead_letter_messages",
                    "requeue": {"kind": "table", "target": "public.campaign_queue"},
                    "never_requeue_error_codes": [21610, 30004, 30005, 30006, 30007]},
            # The demo's long queries start with the demo: a short threshold shows them at once.
            "checks": {"interval_s": 5.0, "timeout_s": 5.0, "long_running_s": 10.0},
        }
        if self.postgres is not None:
            from opsconsole.demo.seed import OWNER_ROLE, POOLER_ROLE

            data["supabase"]["database_url"] = self.postgres.dsn(OWNER_ROLE, s.db_password)
            data["supabase"]["pooler_url"] = self.postgres.dsn(POOLER_ROLE, s.db_password, port=self.pooler.port)
        if self.workdir is not None:
            data["migrations"] = {"revert_dir": str(self.workdir / "reverts")}
        from opsconsole.paths import default_audit_path

        # Kept after the demo stops: a drill's journal is worth reading afterwards.
        data["audit"] = {"path": str(default_audit_path("demo"))}
        return data

    def _write_config(self) -> Path:
        assert self.workdir is not None
        path = self.workdir / "config.toml"
        text = ("# Generated by `opsconsole demo`: points the console at the embedded demo environment.\n"
                "# The secrets are fake and only valid for the simulators.\n" + tomli_w.dumps(self.config_data()))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path
