"""Every numbered step of shared/runbook.md, and what the console does for it.

The steps come from the built-in runbook files (`runbooks/builtin/*.toml`, the same data the
wizards walk): each step with a runbook `number` is one entry here, listed at the bottom of the
tab named by its `tab` key. `kind` is "check" (measured live), "action" (a guarded action), or
"manual" (the console says where to go, with a link built from the configuration; `m` records it).
"""

from __future__ import annotations

from dataclasses import dataclass

from opsconsole.domain.backups import DOWNTIME_WARNING
from opsconsole.runbooks.loader import builtin_runbooks
from opsconsole.runbooks.model import Runbook
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
    warning: str = ""
    runbook: str = ""  # the runbook file's id (added: the wizard opens it)
    step_id: str = ""  # the step's id in that file


__all__ = ["DOWNTIME_WARNING", "LINK_KEYS", "STEPS", "Step", "links", "steps_for_tab", "steps_of"]

# Every key `links()` can return (lint checks runbook files against it, with any configuration).
LINK_KEYS: tuple[str, ...] = (
    "vercel_logs", "vercel_deployments", "supabase_logs", "supabase_backups", "supabase_migrations",
    "supabase_sql", "supabase_reports", "supabase_api_keys", "supabase_status", "n8n_credentials",
    "n8n_executions", "twilio_errors",
)


def steps_of(runbooks: list[Runbook]) -> tuple[Step, ...]:
    """The numbered steps of `runbooks` as catalog entries (steps a wizard adds, number 0, are not)."""
    out: list[Step] = []
    for rb in runbooks:
        for s in rb.steps:
            if not s.number or not s.tab:
                continue
            out.append(Step(rb.title, s.number, s.title, s.kind, s.tab, s.checks, s.link,
                            warning=s.warning, runbook=rb.id, step_id=s.id))
    return tuple(out)


BUILTIN_RUNBOOKS: tuple[Runbook, ...] = tuple(builtin_runbooks())
STEPS: tuple[Step, ...] = steps_of(list(BUILTIN_RUNBOOKS))


def steps_for_tab(tab: str) -> list[Step]:
    return [s for s in STEPS if s.tab == tab]


def links(settings: Settings) -> dict[str, str]:
    """Deep links built from the configuration (empty when the section is absent)."""
    out: dict[str, str] = {}
    if settings.vercel is not None:
        project = settings.vercel.project_id
        out["vercel_logs"] = f"https://vercel.com/dashboard (project {project} -> Logs)"
        out["vercel_deployments"] = f"https://vercel.com/dashboard (project {project} -> Deployments)"
    if settings.supabase is not None:
        base = f"https://supabase.com/dashboard/project/{settings.supabase.project_ref}"
        out["supabase_logs"] = f"{base}/logs/explorer"
        out["supabase_backups"] = f"{base}/database/backups/scheduled"
        out["supabase_migrations"] = f"{base}/database/migrations"
        out["supabase_sql"] = f"{base}/sql/new"
        out["supabase_reports"] = f"{base}/reports/database"
        out["supabase_api_keys"] = f"{base}/settings/api-keys"
        out["supabase_status"] = settings.supabase.status_url
    if settings.n8n is not None:
        instance = settings.n8n.api_url.rstrip("/").removesuffix("/api/v1")
        out["n8n_credentials"] = f"{instance}/home/credentials"
        out["n8n_executions"] = f"{instance}/home/executions"
    out["twilio_errors"] = "https://console.twilio.com/us1/monitor/logs/debugger/errors"
    return out
