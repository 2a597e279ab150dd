"""Proof search: backward best-first, forward greedy and forward sampling, over any :class:`Policy`."""
