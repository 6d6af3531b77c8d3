"""The embedded demo environment: a real PostgreSQL and loopback simulators of the SaaS APIs."""
