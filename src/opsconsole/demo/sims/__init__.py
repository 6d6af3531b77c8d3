"""Loopback simulators, one module per external service, built on `opsconsole.demo.sim`."""
