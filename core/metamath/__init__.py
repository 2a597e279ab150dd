"""advprover's Metamath kernel: reading databases, checking proofs, syntax, proof trees, environments.

The kernel is the trusted base of the project: every proof that enters training or evaluation, and every
theorem the generator produces, is checked here.
"""

from core.metamath.database import Assertion, Database, Hypothesis, Statement, disjoint_pair
from core.metamath.reader import read_database
from core.metamath.verifier import Kernel, VerificationReport, verify_database

__all__ = [
    "Assertion",
    "Database",
    "Hypothesis",
    "Kernel",
    "Statement",
    "VerificationReport",
    "disjoint_pair",
    "read_database",
    "verify_database",
]
