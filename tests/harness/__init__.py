"""Shared test harnesses: pytest plugins that tests/conftest.py loads."""
