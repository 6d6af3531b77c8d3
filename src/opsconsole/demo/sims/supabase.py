"""Loopback simulators of the Supabase Management API and of one project's host.

`build_management` answers like `https://api.supabase.com` (Bearer personal access token);
`build_project` answers like `https://<ref>.supabase.co`: the PostgREST root used as a
service-role key probe (`apikey` header, gateway rules of apis.md §8) and the privileged
Prometheus metrics endpoint (HTTP Basic `service_role`, apis.md §5), whose CPU counters
advance with the wall clock so that two scrapes give a real rate.

Scenarios: `healthy` (all services up, fresh backups, PITR on, ~25 % CPU) and `incident`
(pooler unhealthy, REST restarting, ~94 % CPU, memory ~85 %, connections near the max,
newest completed backup 40 h old, the last backup FAILED, PITR off).

Restores (the Management API's `v1-restore-physical-backup` and `v1-restore-pitr-backup`): 201
with an empty body; the project is RESTORING for `restore_s` (about 10 s), then ACTIVE_HEALTHY
(RESTORE_FAILED when `ProjectState.fail_next_restore` is set). restore-pitr answers 400 "PITR is
not enabled for this project." when PITR is off; a second restore while one runs is refused. With a
`DemoRestorer` (demo/restore.py) the demo database really goes away meanwhile and comes back as the
backup holds it. Restore points (`POST/GET .../backups/restore-point`) exist where PITR is on: PENDING,
AVAILABLE a second later; elsewhere 400.

With a `DemoWorld` whose demo database is up (`world.admin_dsn`), the metrics react to the load
like the real ones (problem `db-load`): CPU, memory and connections follow the number of
sessions that are busy (a query running, or a transaction open, for more than a second) in
`pg_stat_activity`, so terminating the long-running queries brings the CPU down. The CPU counters
then integrate the load measured at each scrape, so the rate between two scrapes reflects it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from opsconsole.demo.scenario import DEMO_JWT_SECRET, PROJECT_REF, DemoSecrets, has
from opsconsole.demo.sim import FaultPlan, Request, Response, Simulator, bearer, iso, now
from opsconsole.demo.world import DemoWorld

# The HS256 secret the demo's legacy keys are signed with: `make_legacy_jwt`'s default.
REGION = "eu-central-1"
HEALTH_SERVICES: tuple[str, ...] = ("auth", "db", "db_postgres_user", "pooler", "realtime", "rest",
                                    "storage", "pg_bouncer")
_REF_RE = r"(?P<ref>[^/]+)"


def _unauthorized() -> Response:
    return Response(401, {"message": "Unauthorized"})


# -- Management API -------------------------------------------------------------------------

class Restorer(Protocol):
    """What the simulator needs of `demo.restore.DemoRestorer`."""

    def begin_restore(self) -> None: ...

    def end_restore(self, *, failed: bool) -> None: ...


RESTORE_S = 10.0
RESTORE_POINT_READY_S = 1.0


@dataclass
class ProjectState:
    """The project's restore-related state, shared by the routes and the restore thread."""

    restore_s: float = RESTORE_S
    status: str | None = None  # None: the scenario's own status
    fail_next_restore: bool = False
    restores: list[dict[str, Any]] = field(default_factory=list)  # every accepted restore request (tests, drills)
    restore_points: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


def _project_body(scenario: str, ref: str) -> dict[str, Any]:
    created = now() - timedelta(days=412)
    return {
        "id": ref,
        "ref": ref,
        "organization_id": "opsdemoorgslugabcdef",
        "organization_slug": "opsdemoorgslugabcdef",
        "name": "campaign-platform",
        "region": REGION,
        "created_at": iso(created),
        "status": "ACTIVE_UNHEALTHY" if has(scenario, "supabase-degraded") else "ACTIVE_HEALTHY",
        "database": {
            "host": f"db.{ref}.supabase.co",
            "version": "17.4.1.054",
            "postgres_engine": "17",
            "release_channel": "ga",
        },
    }


def _health_item(name: str, scenario: str) -> dict[str, Any]:
    """One V1ServiceHealthResponse; `info` uses the spec's three variants."""
    status = "ACTIVE_HEALTHY"
    error: str | None = None
    if has(scenario, "supabase-degraded"):
        if name in ("pooler", "pg_bouncer"):
            status = "UNHEALTHY"
            error = "health check timed out after 2000 ms"
        elif name == "rest":
            status = "COMING_UP"
    item: dict[str, Any] = {"name": name, "healthy": status == "ACTIVE_HEALTHY", "status": status}
    if name == "auth":
        item["info"] = {"name": "GoTrue", "version": "v2.177.0",
                        "description": "GoTrue is a user registration and authentication API"}
    elif name == "realtime":
        item["info"] = {"healthy": True, "db_connected": True, "replication_connected": True,
                        "connected_cluster": 1}
    elif name == "rest" and status == "ACTIVE_HEALTHY":
        item["info"] = {"db_schema": "public,graphql_public"}
    if error is not None:
        item["error"] = error
    return item


@dataclass(frozen=True)
class _BackupPlan:
    """Where the demo's daily backups sit on the clock, fixed when the simulator is built."""

    scenario: str
    built: float  # epoch seconds

    def body(self) -> dict[str, Any]:
        t_now = time.time()
        day = 86400.0
        backups: list[dict[str, Any]] = []
        if has(self.scenario, "backup-failed"):
            # Ages grow while the demo runs: an incident does not fix itself.
            failed_at = self.built - 16 * 3600
            newest_ok = self.built - 40 * 3600
            stamps = [(failed_at, "FAILED")] + [(newest_ok - k * day, "COMPLETED") for k in range(7)]
        else:
            # A daily schedule: the newest completed backup is always less than 24 h old.
            anchor = self.built - 5 * 3600
            slot = anchor + math.floor((t_now - anchor) / day) * day
            stamps = [(slot - k * day, "COMPLETED") for k in range(7)]
        first_id = 880_000 + int(self.built // day)
        for n, (stamp, status) in enumerate(sorted(stamps)):
            backups.append({"id": first_id + n, "is_physical_backup": True, "status": status,
                            "inserted_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(stamp))})
        backups.reverse()  # newest first, like the dashboard
        pitr = not has(self.scenario, "backup-failed")
        physical: dict[str, Any] = {}
        if pitr:
            physical = {"earliest_physical_backup_date_unix": int(t_now - 7 * day),
                        "latest_physical_backup_date_unix": int(t_now - 120)}
        return {"region": REGION, "walg_enabled": True, "pitr_enabled": pitr, "backups": backups,
                "physical_backup_data": physical}


def build_management(faults: FaultPlan, scenario: str, secrets: DemoSecrets, *, world: Any = None,
                     restorer: Restorer | None = None, restore_s: float = RESTORE_S) -> Simulator:
    """The Management API for the demo project: project, service health, backups, restores.

    `world` (demo.world.DemoWorld): a finished restore resolves `data-corruption`. `restorer` takes
    the demo database offline and back. The returned simulator carries its `ProjectState` as
    `sim.project_state` (tests make a restore fail or check what was requested)."""
    token = secrets.supabase_access_token
    sim = Simulator("supabase-mgmt", faults, auth=bearer(lambda: token, unauthorized=_unauthorized))
    plan = _BackupPlan(scenario, time.time())
    state = ProjectState(restore_s=restore_s)
    sim.project_state = state  # type: ignore[attr-defined]

    def project_or_404(ref: str) -> Response | None:
        if ref != PROJECT_REF:
            return Response(404, {"message": "Project not found"})
        return None

    def body_of(req: Request) -> dict[str, Any] | Response:
        try:
            data = req.json()
        except ValueError:
            return Response(400, {"message": "Body must be valid JSON"})
        if not isinstance(data, dict):
            return Response(400, {"message": "Body must be a JSON object"})
        return data

    @sim.route("GET", f"/v1/projects/{_REF_RE}")
    def project(req: Request, m: re.Match[str]) -> Response:
        missing = project_or_404(m["ref"])
        if missing is not None:
            return missing
        body = _project_body(scenario, m["ref"])
        with state.lock:
            if state.status is not None:
                body["status"] = state.status
        return Response(200, body)

    def start_restore(kind: str, target: Any) -> Response:
        with state.lock:
            if state.status == "RESTORING":
                return Response(400, {"message": "A restore is already in progress for this project."})
            state.status = "RESTORING"
            fail = state.fail_next_restore
            state.fail_next_restore = False
            state.restores.append({"kind": kind, "target": target, "at": time.time()})
        thread = threading.Thread(target=_restore, args=(state, restorer, world, fail), name="sim-restore",
                                  daemon=True)
        thread.start()
        return Response(201, None, content_type="application/json")

    @sim.route("POST", f"/v1/projects/{_REF_RE}/database/backups/restore")
    def restore(req: Request, m: re.Match[str]) -> Response:
        missing = project_or_404(m["ref"])
        if missing is not None:
            return missing
        body = body_of(req)
        if isinstance(body, Response):
            return body
        ident = body.get("id")
        if isinstance(ident, bool) or not isinstance(ident, int):
            return Response(400, {"message": "id must be an integer"})
        known = {b["id"]: b for b in plan.body()["backups"]}
        if ident not in known:
            return Response(404, {"message": f"Backup {ident} not found"})
        if known[ident]["status"] != "COMPLETED":
            return Response(400, {"message": f"Backup {ident} is {known[ident]['status']} and cannot be restored"})
        return start_restore("backup", ident)

    @sim.route("POST", f"/v1/projects/{_REF_RE}/database/backups/restore-pitr")
    def restore_pitr(req: Request, m: re.Match[str]) -> Response:
        missing = project_or_404(m["ref"])
        if missing is not None:
            return missing
        body = body_of(req)
        if isinstance(body, Response):
            return body
        data = plan.body()
        if not data["pitr_enabled"]:
            return Response(400, {"message": "PITR is not enabled for this project."})
        target = body.get("recovery_time_target_unix")
        if isinstance(target, bool) or not isinstance(target, int) or target < 0:
            return Response(400, {"message": "recovery_time_target_unix must be a non-negative integer"})
        window = data["physical_backup_data"]
        if not window["earliest_physical_backup_date_unix"] <= target <= window["latest_physical_backup_date_unix"]:
            return Response(400, {"message": "recovery_time_target_unix is outside the available PITR range"})
        return start_restore("pitr", target)

    @sim.route("POST", f"/v1/projects/{_REF_RE}/database/backups/restore-point")
    def create_restore_point(req: Request, m: re.Match[str]) -> Response:
        missing = project_or_404(m["ref"])
        if missing is not None:
            return missing
        body = body_of(req)
        if isinstance(body, Response):
            return body
        name = body.get("name")
        if not isinstance(name, str) or not name or len(name) > 20:
            return Response(400, {"message": "name must be a string of 1 to 20 characters"})
        if not plan.body()["pitr_enabled"]:
            return Response(400, {"message": "Restore points are unavailable for this project's plan"})
        point = {"name": name, "status": "PENDING", "completed_on": None, "created": time.time()}
        with state.lock:
            state.restore_points[name] = point
        return Response(201, _point_body(point))

    @sim.route("GET", f"/v1/projects/{_REF_RE}/database/backups/restore-point")
    def get_restore_point(req: Request, m: re.Match[str]) -> Response:
        missing = project_or_404(m["ref"])
        if missing is not None:
            return missing
        name = req.q("name")
        with state.lock:
            newest = next(iter(reversed(state.restore_points.values())), None)
            point = state.restore_points.get(name) if name else newest
        if point is None:
            return Response(404, {"message": "Restore point not found"})
        return Response(200, _point_body(point))

    @sim.route("GET", f"/v1/projects/{_REF_RE}/health")
    def health(req: Request, m: re.Match[str]) -> Response:
        missing = project_or_404(m["ref"])
        if missing is not None:
            return missing
        wanted = [s for value in req.query.get("services", []) for s in value.split(",") if s]
        if not wanted:
            return Response(400, {"message": "services should not be empty"})
        bad = [s for s in wanted if s not in HEALTH_SERVICES]
        if bad:
            return Response(400, {"message": f"each value in services must be one of the following values: "
                                             f"{', '.join(HEALTH_SERVICES)}"})
        return Response(200, [_health_item(name, scenario) for name in dict.fromkeys(wanted)])

    @sim.route("GET", f"/v1/projects/{_REF_RE}/database/backups")
    def backups(req: Request, m: re.Match[str]) -> Response:
        return project_or_404(m["ref"]) or Response(200, plan.body())

    return sim


def _point_body(point: dict[str, Any]) -> dict[str, Any]:
    """V1RestorePointResponse; a point is AVAILABLE a moment after it was asked for."""
    if point["status"] == "PENDING" and time.time() - point["created"] >= RESTORE_POINT_READY_S:
        point["status"] = "AVAILABLE"
        point["completed_on"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {"name": point["name"], "status": point["status"], "completed_on": point["completed_on"]}


def _restore(state: ProjectState, restorer: Restorer | None, world: Any, fail: bool) -> None:
    """The restore itself: the database goes away, comes back as the backup holds it, status follows."""
    started = time.monotonic()
    failed = fail
    if restorer is not None:
        try:
            restorer.begin_restore()
        except Exception:  # the demo database could not be restored: as Supabase would say
            failed = True
    state.stopping.wait(max(0.0, state.restore_s - (time.monotonic() - started)))
    if restorer is not None:
        try:
            restorer.end_restore(failed=failed)
        except Exception:
            failed = True
    with state.lock:
        state.status = "RESTORE_FAILED" if failed else None  # None: back to the scenario's ACTIVE_HEALTHY
    if not failed and world is not None and world.has("data-corruption"):
        world.resolve("data-corruption")


# -- Project host: API keys -----------------------------------------------------------------

_NO_KEY = {"message": "No API key found in request",
           "hint": "No `apikey` request header or url param was found."}
_BAD_KEY = {"message": "Invalid API key",
            "hint": "Double check your Supabase `anon` or `service_role` API key."}
_BROWSER = re.compile(r"mozilla|chrome|safari|firefox", re.IGNORECASE)


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _pgrst(code: str, message: str) -> Response:
    return Response(401, {"code": code, "details": None, "hint": None, "message": message})


@dataclass(frozen=True)
class _Keys:
    """Which keys this project accepts: legacy JWTs signed with the demo secret for its ref,
    plus optional opaque `sb_secret_` / `sb_publishable_` keys."""

    ref: str
    secret_key: str | None = None
    publishable_key: str | None = None
    jwt_secret: str = DEMO_JWT_SECRET

    def jwt_role(self, token: str) -> tuple[str | None, Response | None]:
        """(role, None) for a valid JWT of this project, else (None, the 401 to send)."""
        parts = token.split(".")
        if len(parts) != 3:
            return None, _pgrst("PGRST301", f"Expected 3 parts in JWT; got {len(parts)}")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            payload = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None, Response(401, _BAD_KEY)
        if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(payload, dict):
            return None, Response(401, _BAD_KEY)
        signed = f"{parts[0]}.{parts[1]}".encode()
        expected = hmac.new(self.jwt_secret.encode(), signed, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature) or payload.get("ref") != self.ref:
            return None, Response(401, _BAD_KEY)
        exp = payload.get("exp")
        if not isinstance(exp, int | float) or exp <= time.time():
            return None, _pgrst("PGRST303", "JWT expired")
        role = payload.get("role")
        return (role if isinstance(role, str) else None), None

    def role(self, key: str, user_agent: str = "") -> tuple[str | None, Response | None]:
        """The role a key grants ('service_role' or 'anon'), or the 401 the gateway sends."""
        if not key:
            return None, Response(401, _NO_KEY)
        if key.startswith("sb_secret_"):
            if self.secret_key is None or not hmac.compare_digest(key, self.secret_key):
                return None, Response(401, _BAD_KEY)
            if _BROWSER.search(user_agent):
                return None, Response(401, {"message": "Forbidden use of secret API key in browser"})
            return "service_role", None
        if key.startswith("sb_publishable_"):
            if self.publishable_key is None or not hmac.compare_digest(key, self.publishable_key):
                return None, Response(401, _BAD_KEY)
            return "anon", None
        if key.count(".") != 2:
            return None, Response(401, _BAD_KEY)
        role, denied = self.jwt_role(key)
        if denied is not None:
            return None, denied
        if role not in ("service_role", "anon"):
            return None, Response(401, _BAD_KEY)
        return role, None


# -- Project host: metrics ------------------------------------------------------------------

@dataclass(frozen=True)
class _Load:
    busy: float  # mean CPU busy fraction
    wobble: float  # amplitude of a slow sine on top of it
    mem_used: float
    disk_used: dict[str, float]
    backends: int
    max_connections: int
    pooler_clients: int


_LOADS = {
    "healthy": _Load(busy=0.25, wobble=0.04, mem_used=0.46, disk_used={"/": 0.38, "/data": 0.41},
                     backends=23, max_connections=120, pooler_clients=41),
    "incident": _Load(busy=0.94, wobble=0.015, mem_used=0.85, disk_used={"/": 0.52, "/data": 0.70},
                      backends=114, max_connections=120, pooler_clients=386),
}
# How the busy time splits over node_exporter's modes (sums to 1).
_BUSY_MODES = {"user": 0.68, "system": 0.21, "iowait": 0.04, "softirq": 0.03, "irq": 0.01, "nice": 0.01,
               "steal": 0.02}
_CPU_SKEW = (0.02, -0.02)  # cpu0 a little busier than cpu1
_WOBBLE_PERIOD_S = 300.0
_MEM_TOTAL = 4 * 1024**3
_DISK_SIZE = {"/": 10 * 1024**3, "/data": 18 * 1024**3}


# The busy sessions the db-load scenario starts with (metabase, n8n-sync, the lock holder and its
# waiter): that many mean the incident's load; none means a quiet day.
BUSY_AT_FULL_LOAD = 4
BUSY_SQL = """
select count(*) from pg_stat_activity
where backend_type = 'client backend' and pid <> pg_backend_pid()
  and coalesce(application_name, '') not like 'opsconsole%'
  and ((state = 'active' and query_start < now() - interval '1 second')
       or (state like 'idle in transaction%' and xact_start < now() - interval '1 second'))
"""


def _mix(low: _Load, high: _Load, f: float) -> _Load:
    """The load `f` of the way from `low` to `high` (0..1)."""
    def at(a: float, b: float) -> float:
        return a + (b - a) * f

    return _Load(busy=at(low.busy, high.busy), wobble=at(low.wobble, high.wobble),
                 mem_used=at(low.mem_used, high.mem_used),
                 disk_used={k: at(low.disk_used[k], high.disk_used[k]) for k in low.disk_used},
                 backends=round(at(low.backends, high.backends)), max_connections=high.max_connections,
                 pooler_clients=round(at(low.pooler_clients, high.pooler_clients)))


class _LoadProbe:
    """How busy the demo database is, read from pg_stat_activity (at most once a second)."""

    def __init__(self, world: DemoWorld) -> None:
        self.world = world
        self._at = 0.0
        self._busy: int | None = None

    def busy_sessions(self) -> int | None:
        if self._busy is not None and time.monotonic() - self._at < 1.0:
            return self._busy
        dsn = self.world.admin_dsn
        if not dsn:
            return self._busy
        import psycopg

        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=2,
                                 application_name="demo-metrics-sim") as conn:
                row = conn.execute(BUSY_SQL).fetchone()
        except (psycopg.Error, OSError):
            return self._busy  # the last known value: a restart or a hiccup does not zero the graph
        self._busy = int(row[0]) if row is not None else 0
        self._at = time.monotonic()
        return self._busy


class _Metrics:
    """Prometheus text for one project; CPU counters integrate the load over wall-clock time."""

    def __init__(self, scenario: str, ref: str, world: DemoWorld | None = None) -> None:
        self.load = _LOADS["incident"] if has(scenario, "db-load") else _LOADS["healthy"]
        self.ref = ref
        self.started = time.monotonic()
        self.uptime_at_start = 3 * 86400 + 4242.0
        self.boot_time = time.time() - self.uptime_at_start
        # Reacting to the database's load: only when the scenario has it and the database is there.
        self.probe = _LoadProbe(world) if world is not None and has(scenario, "db-load") else None
        self._busy_acc: dict[float, float] = {}
        self._acc_t: float | None = None

    def _current_load(self) -> _Load:
        if self.probe is None:
            return self.load
        busy = self.probe.busy_sessions()
        if busy is None:
            return self.load
        return _mix(_LOADS["healthy"], _LOADS["incident"], min(1.0, busy / BUSY_AT_FULL_LOAD))

    def _busy_reactive(self, t: float, skew: float, load: _Load) -> float:
        """Busy seconds so far, the interval since the last scrape counted at the load seen now."""
        start = self._acc_t if self._acc_t is not None else t
        b = min(0.99, max(0.01, load.busy + skew))
        acc = self._busy_acc.get(skew)
        if acc is None:  # the first scrape: as if this load had always been
            acc = self._busy_seconds(t, skew, load)
        else:
            acc += b * max(0.0, t - start)
        self._busy_acc[skew] = acc
        return min(t, acc)

    def _busy_seconds(self, t: float, skew: float, load: _Load | None = None) -> float:
        """Integral of busy(t) = b + skew + a*sin(2πt/P) from 0 to t, clamped to [0, t]."""
        load = load or self.load
        b = min(0.99, max(0.01, load.busy + skew))
        a = load.wobble
        w = 2 * math.pi / _WOBBLE_PERIOD_S
        return max(0.0, min(t, b * t + a * (1 - math.cos(w * t)) / w))

    def render(self) -> str:
        t = self.uptime_at_start + (time.monotonic() - self.started)
        lbl = f'supabase_project_ref="{self.ref}",supabase_identifier="{self.ref}",service_type="db"'
        out: list[str] = []
        load = self._current_load()

        def family(name: str, kind: str, help_text: str, rows: list[tuple[str, str]]) -> None:
            out.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))
            out.extend(f"{name}{{{extra}{lbl}}} {value}" for extra, value in rows)

        cpu_rows: list[tuple[str, str]] = []
        for cpu, skew in enumerate(_CPU_SKEW):
            busy = self._busy_reactive(t, skew, load) if self.probe is not None else self._busy_seconds(t, skew)
            cpu_rows.append((f'cpu="{cpu}",mode="idle",', f"{t - busy:.2f}"))
            cpu_rows += [(f'cpu="{cpu}",mode="{mode}",', f"{busy * share:.2f}")
                         for mode, share in _BUSY_MODES.items()]
        if self.probe is not None:
            self._acc_t = t
        family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.", cpu_rows)
        load1 = 2 * (load.busy + 0.1)
        family("node_load1", "gauge", "1m load average.", [("", f"{load1:.2f}")])
        family("node_load5", "gauge", "5m load average.", [("", f"{load1 * 0.9:.2f}")])
        family("node_boot_time_seconds", "gauge", "Node boot time, in unixtime.",
               [("", f"{self.boot_time:.0f}")])

        avail = _MEM_TOTAL * (1 - load.mem_used)
        for field_name, value in (("MemTotal", _MEM_TOTAL), ("MemAvailable", avail),
                                  ("MemFree", avail * 0.3)):
            family(f"node_memory_{field_name}_bytes", "gauge",
                   f"Memory information field {field_name}_bytes.", [("", f"{value:.6e}")])
        for metric, help_text in (("size", "Filesystem size in bytes."),
                                  ("avail", "Filesystem space available to non-root users in bytes.")):
            rows = []
            for mount, size in _DISK_SIZE.items():
                device = "/dev/nvme0n1p2" if mount == "/" else "/dev/nvme1n1"
                value = size if metric == "size" else size * (1 - load.disk_used[mount])
                rows.append((f'device="{device}",fstype="ext4",mountpoint="{mount}",', f"{value:.6e}"))
            family(f"node_filesystem_{metric}_bytes", "gauge", help_text, rows)

        other = max(1, load.backends // 3)
        family("pg_up", "gauge", "Whether the last scrape of metrics from PostgreSQL was able to connect.",
               [("", "1")])
        family("pg_stat_database_num_backends", "gauge", "Number of backends connected to this database.",
               [('datid="5",datname="postgres",', str(load.backends - other)),
                ('datid="1",datname="template1",', "0"),
                ('datid="16384",datname="_supabase",', str(other))])
        family("max_connections_connection_count", "gauge", "Maximum number of connections.",
               [("", str(load.max_connections))])
        family("pg_database_size_bytes", "gauge", "Disk space used by the database.",
               [('datname="postgres",', f"{2.7e9:.6e}")])
        family("supavisor_connections_active", "gauge", "The total count of active clients for a tenant.",
               [(f'tenant="{self.ref}",', str(load.pooler_clients))])
        return "\n".join(out) + "\n"


def build_project(faults: FaultPlan, scenario: str, secrets: DemoSecrets, *,
                  secret_key: str | None = None, publishable_key: str | None = None,
                  ref: str = PROJECT_REF, world: DemoWorld | None = None) -> Simulator:
    """The project host `https://<ref>.supabase.co`: PostgREST root and the metrics endpoint.

    `secret_key` / `publishable_key` add opaque `sb_secret_…` / `sb_publishable_…` keys to the
    legacy JWTs (`secrets.service_role_key`), which are checked by signature, ref and expiry.
    """
    keys = _Keys(ref=ref, secret_key=secret_key, publishable_key=publishable_key)
    metrics = _Metrics(scenario, ref, world)
    sim = Simulator("supabase-project", faults)

    @sim.route("GET", "/rest/v1/?")
    def rest_root(req: Request, m: re.Match[str]) -> Response:
        apikey = req.headers.get("apikey") or req.q("apikey") or ""
        role, denied = keys.role(apikey, req.headers.get("user-agent", ""))
        if denied is not None:
            return denied
        authorization = req.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            # PostgREST reads the role from this JWT; an opaque key here is not a JWT at all.
            bearer_role, bad = keys.jwt_role(authorization[7:].strip())
            if bad is not None:
                return bad
            role = bearer_role if role == "service_role" else role
        if role != "service_role":
            # The platform keeps the OpenAPI root for privileged keys (apis.md §8).
            return Response(403, {"message": "You cannot consume this service"})
        return Response(200, _openapi_root(ref), content_type="application/openapi+json; charset=utf-8")

    @sim.route("GET", "/customer/v1/privileged/metrics")
    def privileged_metrics(req: Request, m: re.Match[str]) -> Response:
        value = req.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return Response(401, {"message": "Unauthorized"},
                            headers={"WWW-Authenticate": 'Basic realm="metrics"'})
        try:
            user, _, password = base64.b64decode(value[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return Response(401, {"message": "Unauthorized"})
        role, _denied = keys.role(password)
        if user != "service_role" or role != "service_role":
            return Response(401, {"message": "Unauthorized"})
        return Response(200, metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")

    return sim


def _openapi_root(ref: str) -> dict[str, Any]:
    """A small Swagger 2.0 document like PostgREST's root, for the demo schema."""

    def table(description: str) -> dict[str, Any]:
        responses = {"200": {"description": "OK"}, "206": {"description": "Partial Content"}}
        return {"get": {"tags": [description], "produces": ["application/json"], "responses": responses}}

    return {
        "swagger": "2.0",
        "info": {"description": "", "title": "standard public schema", "version": "12.2.12"},
        "host": f"{ref}.supabase.co:443",
        "basePath": "/",
        "schemes": ["https"],
        "consumes": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "produces": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "paths": {
            "/": {"get": {"produces": ["application/openapi+json", "application/json"],
                          "responses": {"200": {"description": "OK"}}, "summary": "OpenAPI description",
                          "tags": ["Introspection"]}},
            "/dead_letter_messages": table("dead_letter_messages"),
            "/campaign_queue": table("campaign_queue"),
        },
        "definitions": {
            "dead_letter_messages": {"type": "object", "required": ["id"],
                                     "properties": {"id": {"type": "integer", "format": "bigint"},
                                                    "error_code": {"type": "integer", "format": "integer"},
                                                    "payload": {"format": "jsonb"}}},
            "campaign_queue": {"type": "object", "required": ["id"],
                               "properties": {"id": {"type": "integer", "format": "bigint"},
                                              "payload": {"format": "jsonb"}}},
        },
    }
