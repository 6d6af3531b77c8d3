"""Adapter tests against the demo simulators (n8n, Twilio)."""
