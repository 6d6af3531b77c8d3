"""Command palette entries: tabs, refresh, pause (the palette also has Textual's themes)."""

from __future__ import annotations

from functools import partial
from typing import Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from opsconsole.services import Services


class PaletteHost(Protocol):
    """What the palette entries call on the app (OpsApp): the provider depends on this, not on
    ui.app, which imports the provider, so the two modules do not import each other."""

    services: Services

    def action_show_tab(self, tab: str) -> None: ...
    def action_refresh(self) -> None: ...
    def action_toggle_pause(self) -> None: ...
    def action_help(self) -> None: ...
    def action_timeline(self) -> None: ...
    def start_action(self, action_id: str, start_key: str) -> None: ...


class OpsCommands(Provider):
    def _commands(self) -> list[tuple[str, str, object]]:
        from opsconsole.ui.panes.tabs import TABS

        app = cast(PaletteHost, self.app)
        cmds: list[tuple[str, str, object]] = [
            (f"Go to {label} tab", f"Show the {label} tab (key {i})", partial(app.action_show_tab, tab))
            for i, (tab, label, _cls) in enumerate(TABS, start=1)
        ]
        cmds.append(("Refresh now", "Run every check now (key r)", app.action_refresh))
        cmds.append(("Pause / resume polling", "Stop or restart the live checks (key p)",
                     app.action_toggle_pause))
        cmds.append(("Show keys", "Every key of the current screen (key ?)", app.action_help))
        cmds.append(("Incident timeline", "Every action and manual step from the audit journal (key t)",
                      app.action_timeline))
        labels = {tab: label for tab, label, _cls in TABS}
        kernel = app.services.kernel
        # Mutating actions: listed only when allowed (never in read-only mode).
        for action in kernel.visible_actions() if kernel is not None else []:
            tab = labels.get(getattr(action, "tab", ""), "Database")
            cmds.append((f"{action.title} ({tab} tab, key {action.start_key})",
                         f"{action.description} [{action.tier.value}]",
                         partial(app.start_action, action.id, action.start_key)))
        return cmds

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)  # type: ignore[arg-type]
