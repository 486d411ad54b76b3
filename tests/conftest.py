"""Shared pytest configuration for the initserve test suite (fixtures are added per package)."""
