"""Tally `mutmut results --all true` (read on stdin) per module: the table scripts/mutation.sh prints.

    mutmut results --all true | python scripts/mutation_report.py core.adversarial.rewards jobs._trainer ...

Kill rate = (killed + timeout) / mutants checked, mutmut's own score (a mutant that hangs the tests is caught).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable

NAME_AND_STATUS = re.compile(r"\s*(\S+)__mutmut_\d+: (.+)$")
FUNCTION_MARK = re.compile(r"\.x_|\.x\u01c1")  # mutmut names a function x_NAME, a method x\u01c1CLASS\u01c1NAME
NOT_RUN = ("not checked", "skipped")


def tally(lines: Iterable[str], modules: list[str]) -> dict[str, Counter[str]]:
    """Per module, how many of its mutants ended in each status."""
    counts: dict[str, Counter[str]] = {module: Counter() for module in modules}
    for line in lines:
        match = NAME_AND_STATUS.match(line)
        if match is None:
            continue
        name, status = match.groups()
        module = FUNCTION_MARK.split(name)[0]
        if module in counts:
            counts[module][status.strip()] += 1
    return counts


def row(label: str, counts: Counter[str]) -> str:
    checked = sum(n for status, n in counts.items() if status not in NOT_RUN)
    caught = counts["killed"] + counts["timeout"]
    other = checked - caught - counts["survived"] - counts["no tests"]
    rate = f"{100 * caught / checked:5.1f}%" if checked else "    -"
    return (
        f"{label:34} {checked:7} {counts['killed']:6} {counts['timeout']:7} {counts['survived']:8} "
        f"{counts['no tests']:8} {other:5} {counts['not checked']:11}  {rate}"
    )


def main(modules: list[str]) -> None:
    counts = tally(sys.stdin, modules)
    print(
        f"{'module':34} {'checked':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8} "
        f"{'other':>5} {'not checked':>11}  kill rate"
    )
    total: Counter[str] = Counter()
    for module in modules:
        print(row(module, counts[module]))
        total.update(counts[module])
    print(row("total", total))


if __name__ == "__main__":
    main(sys.argv[1:])
