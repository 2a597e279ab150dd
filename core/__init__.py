"""advprover's library: the Metamath kernel, the storage protocol, models, search and training.

Nothing in ``core`` imports ``jobs``: the roles are built on this library, never the reverse.
"""
