"""Which Metamath database an experiment uses, resolved once when the experiment is created.

``default`` means: ``$ADVPROVER_DATABASE`` if set, else set.mm's propositional part (everything before
``ax-gen``) when Debian's ``metamath-databases`` is installed, else the embedded Hilbert database, so
that everything runs on a machine with nothing else installed. ``embedded`` always means the embedded
database. The resolved path is frozen into the experiment's configuration, so every job agrees.
"""

from __future__ import annotations

import dataclasses
import os

from configs.experiment import DatabaseConfig
from core.errors import ConfigError
from core.metamath.embedded import embedded_database_path

DEBIAN_SET_MM = "/usr/share/metamath/databases/set.mm"
SET_MM_PROPOSITIONAL_END = "ax-gen"


def resolve_database(spec: DatabaseConfig) -> DatabaseConfig:
    """``spec`` with ``path`` made absolute and ``default``/``embedded`` replaced by a real file."""
    if spec.path == "embedded":
        return dataclasses.replace(spec, path=str(embedded_database_path()))
    if spec.path == "default":
        chosen = os.environ.get("ADVPROVER_DATABASE", "")
        if chosen:
            return resolve_database(dataclasses.replace(spec, path=chosen))
        if os.path.isfile(DEBIAN_SET_MM):
            return dataclasses.replace(spec, path=DEBIAN_SET_MM, stop_at=spec.stop_at or SET_MM_PROPOSITIONAL_END)
        return dataclasses.replace(spec, path=str(embedded_database_path()))
    path = os.path.abspath(os.path.expanduser(spec.path))
    if not os.path.isfile(path):
        raise ConfigError(f"database.path {spec.path!r}: no such file (give a .mm file, 'default' or 'embedded')")
    return dataclasses.replace(spec, path=path)


def describe_database(spec: DatabaseConfig) -> str:
    """A one-line description for logs and summaries."""
    name = os.path.basename(spec.path)
    if spec.path == str(embedded_database_path()):
        name = "the embedded Hilbert database (hilbert.mm)"
    return f"{name} up to {spec.stop_at}" if spec.stop_at else name
