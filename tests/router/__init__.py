"""Tests of src/supportdesk/router/ (a package, so that its modules and conftest.py never clash with another folder's)."""
