"""The guided incident wizard: the full-screen walkthrough of one runbook, and its dialogs."""
