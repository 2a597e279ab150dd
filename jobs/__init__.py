"""Entry points: one ``fire`` command-line module per role, plus launch and status.

A role never imports another role; shared command-line plumbing lives in ``jobs/_cli.py``.
"""
