"""The team server's tests, by area as in src/supportdesk/server/ (a package, so that its
conftest.py and modules do not clash with tests/conftest.py and tests/history/test_history.py)."""
