"""Hostile and careless input, across the app (a package, so that its modules never clash with another folder's)."""
