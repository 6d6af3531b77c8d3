"""opsconsole: a production runbook turned into a live terminal console."""

__version__ = "0.1.0"
