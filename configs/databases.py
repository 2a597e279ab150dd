"""Which Metamath database an experiment uses, resolved once when the experiment is created.

``default`` means: ``$ADVPROVER_DATABASE`` if set, else set.mm's propositional part (everything before
``ax-gen``) when Debian's ``metamath-databases`` is installed, else the embedded Hilbert database, so
that everything runs on a machine with nothing else installed. ``embedded`` always means the embedded
database. The resolved path is frozen into the experiment's configuration, so every job agrees.
:func:`check_database` reads the resolved database once before an experiment is created or resumed, so
that a file that is missing, unreadable, malformed or without theorems stops the launch, not every job.
"""

from __future__ import annotations

import dataclasses
import os

from configs.experiment import DatabaseConfig
from core.errors import ConfigError, MetamathError
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
    if not os.path.exists(path):
        raise ConfigError(f"database.path {spec.path!r}: no such file (give a .mm file, 'default' or 'embedded')")
    if not os.path.isfile(path):
        raise ConfigError(f"database.path {spec.path!r} is not a regular file (give a .mm file)")
    return dataclasses.replace(spec, path=path)


def check_database(spec: DatabaseConfig) -> int:
    """The number of theorems of the resolved database; :class:`ConfigError` naming ``database.path`` when
    it is not a readable regular file, does not parse (up to ``stop_at``) or holds no theorem."""
    from core.metamath.reader import read_database

    where = f"database.path {spec.path!r}"
    if not os.path.exists(spec.path):
        raise ConfigError(f"{where}: no such file (give a .mm file, 'default' or 'embedded')")
    if not os.path.isfile(spec.path):
        raise ConfigError(f"{where} is not a regular file (give a .mm file)")
    if not os.access(spec.path, os.R_OK):
        raise ConfigError(f"{where} is not readable (check its permissions)")
    try:
        database = read_database(spec.path, stop_at=spec.stop_at or None)
    except MetamathError as error:
        raise ConfigError(f"{where} does not read as a Metamath database: {error}") from None
    except (OSError, UnicodeError) as error:
        raise ConfigError(f"{where} cannot be read: {error}") from None
    count = len(database.theorems())
    if count == 0:
        upto = f" before {spec.stop_at!r}" if spec.stop_at else ""
        raise ConfigError(f"{where} has no theorems ($p statements){upto}: nothing to learn from or prove")
    return count


def describe_database(spec: DatabaseConfig) -> str:
    """A one-line description for logs and summaries."""
    name = os.path.basename(spec.path)
    if spec.path == str(embedded_database_path()):
        name = "the embedded Hilbert database (hilbert.mm)"
    return f"{name} up to {spec.stop_at}" if spec.stop_at else name
