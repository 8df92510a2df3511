"""Retraining: fresh labelled data in, a gated challenger out as a branch and a pull request."""
