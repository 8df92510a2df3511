"""Drift of logged traffic and feedback against the reference profile, and the alert rules."""
