"""Tests of src/supportdesk/kb/ (a package, so that its modules and conftest.py never clash with another folder's)."""
