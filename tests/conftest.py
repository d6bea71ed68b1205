"""Test set-up shared by every test: real model calls are blocked (accord.testing)."""

pytest_plugins = ["accord.testing.pytest_plugin"]
