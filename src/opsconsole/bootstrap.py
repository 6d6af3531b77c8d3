"""Composition root: settings -> clients -> adapters -> Services.

Adapter modules are imported inside the factory so that the console's first frame does not
wait for SDK imports (twilio, psycopg, prometheus_client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsconsole.domain.ports import Adapter, Check
from opsconsole.services import Services
from opsconsole.settings import Settings

if TYPE_CHECKING:
    from opsconsole.actions.kernel import ActionKernel, GuardedAction
    from opsconsole.adapters.dlq import DlqStore
    from opsconsole.audit import Journal


class _StatusPageAdapter:
    """Owns the client of one public status page (no auth)."""

    def __init__(self, check_id: str, system: str, title: str, url: str, timeout_s: float) -> None:
        from opsconsole.adapters.http import new_client
        from opsconsole.adapters.statuspage import StatusPageCheck

        self.system = system
        self._client = new_client(timeout_s=timeout_s)
        self._check = StatusPageCheck(check_id, system, title, url, self._client, timeout_s)

    def checks(self) -> list[Check]:
        return [self._check]

    async def aclose(self) -> None:
        await self._client.aclose()


def build_adapters(settings: Settings) -> list[Adapter]:
    adapters: list[Adapter] = []
    if settings.api is not None:
        from opsconsole.adapters.api_health import ApiAdapter

        adapters.append(ApiAdapter(settings))
    if settings.vercel is not None:
        from opsconsole.adapters.vercel import VercelAdapter

        adapters.append(VercelAdapter(settings))
    if settings.supabase is not None:
        from opsconsole.adapters.supabase import SupabaseAdapter

        adapters.append(SupabaseAdapter(settings))
        adapters.append(_StatusPageAdapter("supabase.status_page", "supabase", "Supabase status page",
                                           settings.supabase.status_url, settings.checks.timeout_s))
        if settings.supabase.database_url is not None or settings.supabase.pooler_url is not None:
            from opsconsole.adapters.postgres import PostgresAdapter

            adapters.append(PostgresAdapter(settings))
        if settings.supabase.database_url is not None:
            from opsconsole.adapters.migrations.check import MigrationsAdapter

            adapters.append(MigrationsAdapter(settings))
    if settings.n8n is not None:
        from opsconsole.adapters.n8n import N8nAdapter

        adapters.append(N8nAdapter(settings))
    if settings.twilio is not None:
        from opsconsole.adapters.twilio import TwilioAdapter

        adapters.append(TwilioAdapter(settings))
    return adapters


def build_dlq_store(services: Services) -> DlqStore | None:
    settings = services.settings
    if settings.dlq is None or settings.supabase is None or settings.supabase.database_url is None:
        return None
    from opsconsole.adapters.dlq import DlqStore
    from opsconsole.audit import Operator

    return DlqStore(settings, mapping=settings.dlq.columns, operator=Operator.detect().label,
                    alert_lookup=services.related_alert)


def build_kernel(services: Services) -> ActionKernel:
    """Every guarded action goes through this kernel: journal, locks, confirmation, read-only."""
    from opsconsole.actions.backups import backup_actions
    from opsconsole.actions.database import database_actions
    from opsconsole.actions.dlq import dlq_actions
    from opsconsole.actions.kernel import ActionKernel
    from opsconsole.actions.locks import OperatorLocks
    from opsconsole.actions.migrations import migration_actions
    from opsconsole.actions.n8n import n8n_actions
    from opsconsole.adapters.n8n import N8nAdapter
    from opsconsole.audit import Journal, Operator

    settings = services.settings
    operator = Operator.detect()
    kernel = ActionKernel(settings, Journal.for_settings(settings, operator),
                          locks=OperatorLocks.for_settings(settings, operator))
    for action in database_actions(settings):
        kernel.register(action)
    for action in dlq_actions(settings, services.dlq_store):
        kernel.register(action)
    for action in _vercel_actions(services, kernel.journal):
        kernel.register(action)
    supabase = services.get_adapter("supabase")  # the Management API client (restores, restore points)
    for action in migration_actions(settings, supabase):
        kernel.register(action)
    for action in backup_actions(settings, supabase, services.restore_state, operator=operator.label):
        kernel.register(action)

    def n8n_adapter() -> N8nAdapter | None:  # the checks' adapter, built lazily after the first frame
        found = services.get_adapter("n8n")
        return found if isinstance(found, N8nAdapter) else None

    for action in n8n_actions(settings, n8n_adapter, journal=kernel.journal):
        kernel.register(action)
    return kernel


def _vercel_actions(services: Services, journal: Journal) -> list[GuardedAction]:
    """Redeploy and promote; the adapter is the checks' own, looked up when first used."""
    settings = services.settings
    if settings.vercel is None:
        return []
    import asyncio

    from opsconsole.actions.vercel import DeployApi, PromotionRecord, last_promotion, vercel_actions
    from opsconsole.audit import JournalError

    project_id = settings.vercel.project_id

    def adapter() -> DeployApi:
        found = services.get_adapter("vercel")
        if found is None:
            raise RuntimeError("the Vercel adapter is missing although [vercel] is configured")
        return found  # type: ignore[return-value]

    async def last() -> PromotionRecord | None:
        def read() -> PromotionRecord | None:
            try:
                return last_promotion(journal.read().events, project_id)
            except JournalError:
                return None

        return await asyncio.to_thread(read)

    return list(vercel_actions(settings, adapter, last_promotion=last))


def build_services(settings: Settings) -> Services:
    return Services(settings, adapter_factory=build_adapters, kernel_factory=build_kernel,
                    dlq_factory=build_dlq_store)
