"""Connecting to PostgreSQL without leaking a secret, for every database user of the console (the
checks in postgres.py, the DLQ store, the operator locks and the database actions).

A DSN becomes a `DbTarget` that summaries may show (never the password); a failure to connect
becomes a (kind, summary) that says what to do; a connection is reused only on the event loop
that opened it and while it is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow

from opsconsole.domain.text import printable
from opsconsole.settings import Secret, SecretError

APP_NAME = "opsconsole"
SESSION_PORT = 5432

AsyncConn = psycopg.AsyncConnection[DictRow]


async def reusable(conn: AsyncConn | None, conn_loop: asyncio.AbstractEventLoop | None,
                   loop: asyncio.AbstractEventLoop) -> AsyncConn | None:
    """`conn` when it can still serve `loop`; a dead one (or one bound to another loop) is dropped,
    and closed when that is possible from here."""
    if conn is None:
        return None
    if conn_loop is not loop or conn.closed or conn.broken:
        if conn_loop is loop:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()
        return None
    return conn


async def configured(conn: AsyncConn, statements: Sequence[Any]) -> AsyncConn:
    """Run session settings on a fresh connection; never leak it when one fails."""
    try:
        for statement in statements:
            await conn.execute(statement)
    except BaseException:
        with contextlib.suppress(psycopg.Error, OSError):
            await conn.close()
        raise
    return conn


class ConfigProblem(Exception):
    """A configuration problem found before talking to the database; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class DbTarget:
    """Where a DSN points, without its password: what summaries may show."""

    host: str
    port: int
    user: str
    dbname: str
    password: str = ""  # kept only to scrub it from messages; never shown

    @property
    def address(self) -> str:
        if self.host.startswith("/"):
            return f"{self.host} (socket, port {self.port})"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def masked(self) -> str:
        """A URL for details/logs: the password replaced by ***."""
        cred = quote(self.user, safe="") + (":***" if self.password else "")
        return f"postgresql://{cred}@{self.address}/{quote(self.dbname, safe='')}"

    def scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if len(self.password) >= 3 else text


def parse_target(dsn: str, *, hint: str) -> DbTarget:
    """Parse a URL or key=value DSN. libpq's parse errors can quote the string, so they are
    replaced by a message naming only where the DSN came from."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        raise ConfigProblem(f"{hint} is not a valid PostgreSQL connection string") from None
    host = str(params.get("host") or params.get("hostaddr") or "localhost").split(",")[0]
    port_text = str(params.get("port") or SESSION_PORT).split(",")[0]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigProblem(f"{hint} has an invalid port") from None
    return DbTarget(host=host, port=port, user=str(params.get("user") or ""),
                    dbname=str(params.get("dbname") or params.get("user") or "postgres"),
                    password=str(params.get("password") or ""))


def reveal_dsn(secret: Secret) -> str:
    """The secret's value as a DSN; ConfigProblem (naming its source, never the value) when unusable."""
    try:
        value = secret.reveal()
    except SecretError as exc:  # names the source, never the value
        raise ConfigProblem(str(exc)) from None
    if not value.strip():
        raise ConfigProblem(f"{secret.source} is empty")
    return value


def first_line(exc: BaseException, target: DbTarget | None) -> str:
    """The server's own words, one printable line, password scrubbed."""
    text = str(exc) or type(exc).__name__
    if target is not None:
        text = target.scrub(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # psycopg prefixes 'connection failed: connection to server at "h", port p failed: FATAL: ...'
    line = lines[0] if lines else text
    for marker in ("FATAL:", "ERROR:"):
        if marker in line:
            line = line.split(marker, 1)[1]
    if " failed: " in line and line.startswith("connection failed"):
        line = line.rsplit(" failed: ", 1)[1]
    return printable(line.strip(), single_line=True, limit=160)


def describe_connect_error(exc: BaseException, *, what: str, target: DbTarget, hint: str,
                           timeout_s: float) -> tuple[str, str]:
    """(kind, summary) for a failure to connect; `what` is 'pooler' or 'database'."""
    if isinstance(exc, TimeoutError):
        why = "Supavisor hanging or overloaded" if what == "pooler" else "database overloaded"
        return "timeout", (f"no answer from the {what} at {target.address} within {timeout_s:g} s — "
                           f"{why}, or a firewall dropping packets?")
    low = str(exc).lower()
    user = printable(target.user or "(none)", single_line=True, limit=60)
    db = printable(target.dbname, single_line=True, limit=60)
    if "password authentication failed" in low:
        return "auth", f"password authentication failed for user {user} — check {hint}"
    if "no password supplied" in low:
        return "auth", f"the server wants a password for user {user} and {hint} has none"
    if "tenant or user not found" in low:
        return "auth", (f"the pooler does not know user {user} (Tenant or user not found) — the pooler user "
                        f"is postgres.<project_ref>; check {hint}")
    if "role" in low and "does not exist" in low:
        return "auth", f"role {user} does not exist — check the user in {hint}"
    if "database" in low and "does not exist" in low:
        return "config", f"database {db} does not exist — check the database name in {hint}"
    if "no pg_hba.conf entry" in low:
        return "auth", f"the server does not allow user {user} from this host (pg_hba.conf) — check {hint}"
    if "connection refused" in low:
        if what == "pooler":
            return "refused", (f"pooler refused the connection at {target.address} — "
                               "is Supavisor up / the port right?")
        return "refused", f"database refused the connection at {target.address} — is it up / the port right?"
    if "timeout expired" in low or "timed out" in low:
        return "timeout", (f"no answer from the {what} at {target.address} within {timeout_s:g} s "
                           "(connect timed out)")
    if "could not translate host name" in low or "name or service not known" in low:
        return "dns", f"cannot resolve host {printable(target.host, limit=80)} — check {hint}"
    if "too many connections" in low or "remaining connection slots" in low or "max_client_conn" in low:
        return "full", (f"the {what} at {target.address} has no free connection slots: "
                        f"{first_line(exc, target)}")
    if "starting up" in low or "shutting down" in low or "in recovery mode" in low:
        return "unavailable", (f"the database behind {target.address} is not available: "
                               f"{first_line(exc, target)}")
    if "server closed the connection" in low or "connection reset" in low:
        return "closed", f"the {what} at {target.address} closed the connection during login"
    return "other", f"cannot connect to the {what} at {target.address}: {first_line(exc, target)}"
