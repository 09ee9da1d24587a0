"""Helpers shared by several test folders (rather than imported from one another's test modules)."""
