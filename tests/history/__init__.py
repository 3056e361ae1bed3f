"""Tests of src/supportdesk/history/ (a package, so that its modules and conftest.py never clash with another folder's)."""
