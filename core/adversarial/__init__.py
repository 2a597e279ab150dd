"""The parts of the adversarial loop that are not roles: rewards, heuristics, replay buffers, generation.

The roles in ``jobs/`` wire these to storage; everything here is plain, testable library code.
"""
