"""The runbook as data: each step is a live check, a guarded action or a guided manual step."""
