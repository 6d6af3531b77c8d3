"""Every numbered step of shared/runbook.md, and what the console does for it.

`kind` is "check" (measured live), "action" (a guarded action), or "manual" (the console
says where to go, with a link built from the configuration). `built` is False for steps
whose action or wizard has not been built yet: the UI and docs say so honestly.
"""

from __future__ import annotations

from dataclasses import dataclass

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


DOWNTIME_WARNING = ("Restoring from a backup (PITR or Daily) overrides the current database. This takes the "
                    "database OFFLINE for the duration of the restore (minutes to hours depending on size).")

STEPS: tuple[Step, ...] = (
    Step("API Down / 500 Errors", 1, "Check status: /health and the Vercel dashboard", "check", "api",
         ("api.health", "vercel.deployment", "vercel.status_page")),
    Step("API Down / 500 Errors", 2, "Check logs: Supabase API logs or Vercel runtime logs", "manual", "api",
         link="vercel_logs"),
    Step("API Down / 500 Errors", 3, "Restart: redeploy the latest commit in Vercel", "action", "deploy",
         built=False),
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
    Step("How to Rollback", 1, "Vercel: promote the previous working deployment", "action", "deploy",
         built=False),
    Step("How to Rollback", 2, "Supabase migration: identify it, run the revert script or ALTER TABLE "
         "(data loss possible)", "manual", "deploy", link="supabase_migrations",
         warning="Data loss possible if reverting destructive schema changes."),
    Step("Backups & Restore Plan", 1, "Severity check: restore only if corruption is unfixable via SQL",
         "manual", "backups", ("backups.latest",), link="supabase_backups", warning=DOWNTIME_WARNING),
    Step("Backups & Restore Plan", 2, "Initiate the restore (Dashboard -> Settings -> Database -> Backups)",
         "manual", "backups", link="supabase_backups", warning=DOWNTIME_WARNING),
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
