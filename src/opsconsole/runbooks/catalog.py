"""Every numbered step of shared/runbook.md, and what the console does for it.

`kind` is "check" (measured live), "action" (a guarded action), or "manual" (the console
says where to go, with a link built from the configuration). `built` is False for steps
whose action or wizard has not been built yet: the UI and docs say so honestly.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsconsole.domain.backups import DOWNTIME_WARNING
from opsconsole.settings import Settings


@dataclass(frozen=True)
class Step:
    section: str
    number: int
    text: str
    kind: str  # check | action | manual
    tab: str  # api | database | n8n | dlq | deploy | backups
    check_ids: tuple[str, ...] = ()
    link: str = ""  # key into `links()`
    built: bool = True
    warning: str = ""


__all__ = ["DOWNTIME_WARNING", "STEPS", "Step", "links", "steps_for_tab"]

STEPS: tuple[Step, ...] = (
    Step("API Down / 500 Errors", 1, "Check status: /health and the Vercel dashboard", "check", "api",
         ("api.health", "vercel.deployment", "vercel.status_page")),
    Step("API Down / 500 Errors", 2, "Check logs: Vercel runtime logs live (l on the Deploy tab: 5 shows only "
         "5xx; opsconsole logs --status 5xx), or the Supabase API logs", "manual", "api", link="supabase_logs"),
    Step("API Down / 500 Errors", 3, "Restart: redeploy the latest commit in Vercel to cycle instances (R on the "
         "Deploy tab)", "action", "deploy"),
    Step("API Down / 500 Errors", 4, "Database connection: pooler active (transaction mode, port 6543)",
         "check", "database", ("supabase.pooler",)),
    Step("Supabase Queries Failing", 1, "Check service status: status.supabase.com", "check", "database",
         ("supabase.status_page", "supabase.health")),
    Step("Supabase Queries Failing", 2, "Check resource usage; if CPU > 90 %, kill long-running queries",
         "check", "database", ("supabase.resources", "db.long_running")),
    Step("Supabase Queries Failing", 2, "Kill long-running queries: c cancels, x terminates the selected sessions",
         "action", "database"),
    Step("Supabase Queries Failing", 3, "Check credentials: SUPABASE_SERVICE_ROLE_KEY not expired or rotated",
         "check", "database", ("supabase.service_key",)),
    Step("n8n Sync Failing", 1, "Check execution log: executions filtered by error", "check", "n8n",
         ("n8n.executions",)),
    Step("n8n Sync Failing", 2, "Retry the failed workflow execution: space selects, R retries (followed to "
         "success or error)", "action", "n8n"),
    Step("n8n Sync Failing", 3, "Verify n8n's Supabase credentials: tested by n8n itself; fix a failing one in "
         "n8n", "check", "n8n", ("n8n.credentials",), link="n8n_credentials"),
    Step("Webhooks Failing (Twilio)", 1, "Check the DLQ: recent failures in dead_letter_messages", "check",
         "dlq", ("dlq.depth",)),
    Step("Webhooks Failing (Twilio)", 2, "Twilio logs: Monitor errors (e.g. 30008)", "check", "dlq",
         ("twilio.alerts",)),
    Step("Webhooks Failing (Twilio)", 3, "Re-queue transient failures with valid payloads: R re-queues, "
         "D discards, e fixes a payload", "action", "dlq"),
    Step("How to Rollback", 1, "Vercel: promote the previous working deployment (P on the Deploy tab; u "
         "promotes back what served before)", "action", "deploy"),
    Step("How to Rollback", 2, "Supabase migration: the Deploy tab lists the migrations (destructive ones flagged); "
         "V reverts the one under the cursor after a dry run that counts the data it loses (manual when it has "
         "no revert)", "action", "deploy", ("db.migrations",), link="supabase_migrations",
         warning="Data loss possible if reverting destructive schema changes."),
    Step("Backups & Restore Plan", 1, "Severity check: restore only if corruption is unfixable via SQL (the restore "
         "asks why, and journals it)", "action", "backups", ("backups.latest",), link="supabase_backups",
         warning=DOWNTIME_WARNING),
    Step("Backups & Restore Plan", 2, "Initiate the restore: R restores the daily backup under the cursor, T a point "
         "in time (PITR); the preview says what is lost", "action", "backups", link="supabase_backups",
         warning=DOWNTIME_WARNING),
)


def steps_for_tab(tab: str) -> list[Step]:
    return [s for s in STEPS if s.tab == tab]


def links(settings: Settings) -> dict[str, str]:
    """Deep links built from the configuration (empty when the section is absent)."""
    out: dict[str, str] = {}
    if settings.vercel is not None:
        out["vercel_logs"] = f"https://vercel.com/dashboard (project {settings.vercel.project_id} -> Logs)"
    if settings.supabase is not None:
        base = f"https://supabase.com/dashboard/project/{settings.supabase.project_ref}"
        out["supabase_logs"] = f"{base}/logs/explorer"
        out["supabase_backups"] = f"{base}/database/backups/scheduled"
        out["supabase_migrations"] = f"{base}/database/migrations"
    if settings.n8n is not None:
        instance = settings.n8n.api_url.rstrip("/").removesuffix("/api/v1")
        out["n8n_credentials"] = f"{instance}/home/credentials"
        out["n8n_executions"] = f"{instance}/home/executions"
    out["twilio_errors"] = "https://console.twilio.com/us1/monitor/logs/debugger/errors"
    return out
