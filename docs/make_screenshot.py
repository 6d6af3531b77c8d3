"""Regenerate docs/screenshot.svg from the app itself, on the demo environment's incident.

Run: python docs/make_screenshot.py  (starts and stops the demo environment).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from opsconsole.bootstrap import build_services
from opsconsole.config import load_settings
from opsconsole.demo.environment import DemoEnvironment
from opsconsole.ui.app import OpsApp


async def shoot(config: Path, out: Path) -> None:
    # The default theme whatever terminal this runs in (a 16-colour one would pick the contrast theme).
    app = OpsApp(build_services(load_settings(config)), theme="opsconsole-dark")
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(100):
            await pilot.pause(0.1)
            if len(app.services.board.results) == 13 and not app.checks_in_flight:
                break
        await pilot.pause(0.3)
        app.save_screenshot(filename=out.name, path=str(out.parent))


def main() -> None:
    out = Path(__file__).with_name("screenshot.svg")
    with DemoEnvironment("incident") as env:
        assert env.config_path is not None
        asyncio.run(shoot(env.config_path, out))
    print(out)


if __name__ == "__main__":
    main()
