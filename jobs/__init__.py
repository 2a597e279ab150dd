"""Entry points: one command-line module per role (``python -m jobs.<role>``), plus launch and status.

A role never imports another role; shared command-line plumbing lives in ``jobs/_cli.py``.
"""
