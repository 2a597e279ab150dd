"""Deterministic train/valid/test splits by label hash, their ratios and validation, and the labels a prover
may use for a target theorem."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.metamath.database import Database
from core.metamath.embedded import embedded_database_path
from core.metamath.environment import Context
from core.metamath.reader import read_database
from core.metamath.splits import SPLITS, SplitRatios, split_of, split_theorems, splittable

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prop(prop_mm: Path) -> Database:
    return read_database(prop_mm)


def labels_by_split(db: Database, ratios: SplitRatios = SplitRatios(), salt: str = "") -> dict[str, list[str]]:
    return {name: [t.label for t in theorems] for name, theorems in split_theorems(db, ratios, salt).items()}


# --- determinism ---------------------------------------------------------------------------------


def test_the_split_of_a_label_never_changes() -> None:
    """Pinned: changing the hash would silently move theorems between train and test across versions."""
    db = read_database(embedded_database_path())
    splits = labels_by_split(db)
    assert {name: len(labels) for name, labels in splits.items()} == {"train": 84, "valid": 6, "test": 8}
    assert splits["valid"] == ["pm2.43i", "simprim", "sylbir", "pm2.54", "olc", "pm3.2"]
    assert splits["test"] == ["pm2.27", "con4d", "pm2.21d", "notnot2", "con1", "con3i", "impi", "imor"]


def test_same_split_in_another_process(prop_mm: Path, prop: Database) -> None:
    code = (
        "import json, sys; from core.metamath.reader import read_database; "
        "from core.metamath.splits import split_theorems; "
        "db = read_database(sys.argv[1]); "
        "print(json.dumps({k: [t.label for t in v] for k, v in split_theorems(db).items()}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(prop_mm)],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert json.loads(run.stdout) == labels_by_split(prop)


def test_the_split_does_not_depend_on_database_order_or_content(prop: Database) -> None:
    expected = {label: name for name, labels in labels_by_split(prop).items() for label in labels}
    shuffled = list(prop.assertions)
    random.Random(7).shuffle(shuffled)
    half = shuffled[: len(shuffled) // 2]
    for assertions in (shuffled, half):
        other = dataclasses.replace(prop, assertions=assertions)
        for name, labels in labels_by_split(other).items():
            assert all(expected[label] == name for label in labels)
        assert sorted(itertools.chain.from_iterable(labels_by_split(other).values())) == sorted(
            a.label for a in assertions if a.label in expected
        )


def test_salt_changes_the_split(prop: Database) -> None:
    plain, salted = labels_by_split(prop), labels_by_split(prop, salt="run-2")
    assert plain != salted
    assert labels_by_split(prop, salt="run-2") == salted


# --- ratios --------------------------------------------------------------------------------------


def test_default_ratios_on_prop_mm(prop: Database) -> None:
    splits = labels_by_split(prop)
    sizes = {name: len(labels) for name, labels in splits.items()}
    assert sum(sizes.values()) == 998
    assert abs(sizes["train"] / 998 - 0.8) < 0.04
    assert abs(sizes["valid"] / 998 - 0.1) < 0.03 and abs(sizes["test"] / 998 - 0.1) < 0.03
    assert not set(splits["train"]) & set(splits["test"])


@pytest.mark.parametrize(
    "ratios",
    [
        SplitRatios(0.5, 0.25, 0.25),
        SplitRatios(0.6, 0.0, 0.4),
        SplitRatios.parse("70/20/10"),
        SplitRatios.parse("0.34,0.33,0.33"),
    ],
)
def test_custom_ratios(prop: Database, ratios: SplitRatios) -> None:
    sizes = {name: len(labels) for name, labels in labels_by_split(prop, ratios).items()}
    for name in SPLITS:
        assert abs(sizes[name] / 998 - getattr(ratios, name)) < 0.05, (name, sizes)


def test_degenerate_ratios(prop: Database) -> None:
    assert len(labels_by_split(prop, SplitRatios(1, 0, 0))["train"]) == 998
    assert len(labels_by_split(prop, SplitRatios(0, 0, 1))["test"]) == 998


def test_ratios_parse() -> None:
    assert SplitRatios.parse("80/10/10") == SplitRatios(0.8, 0.1, 0.1)
    assert SplitRatios.parse("8,1,1") == SplitRatios(0.8, 0.1, 0.1)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: SplitRatios(train=1.5, valid=0.0, test=-0.5), "'train'"),
        (lambda: SplitRatios(train=0.9, valid=-0.1, test=0.2), "'valid'"),
        (lambda: SplitRatios(train=0.8, valid=0.1, test="0.1"), "'test'"),  # type: ignore[arg-type]
        (lambda: SplitRatios(train=True, valid=0.0, test=0.0), "'train'"),  # type: ignore[arg-type]
        (lambda: SplitRatios(0.8, 0.1, 0.2), "sum to 1"),
        (lambda: SplitRatios.parse("80/20"), "three numbers"),
        (lambda: SplitRatios.parse("a/b/c"), "three numbers"),
        (lambda: SplitRatios.parse("0/0/0"), "all be zero"),
        (lambda: SplitRatios.parse("90/-10/20"), "'valid'"),
    ],
)
def test_bad_ratios_raise_a_config_error_naming_the_field(make, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        make()


def test_split_of_respects_boundaries() -> None:
    everything_train = SplitRatios(1, 0, 0)
    assert {split_of(f"label{i}", everything_train) for i in range(200)} == {"train"}
    assert {split_of(f"label{i}") for i in range(200)} == set(SPLITS)


# --- what is split -------------------------------------------------------------------------------


def test_syntax_theorems_and_incomplete_proofs_are_not_split(tmp_path: Path) -> None:
    path = tmp_path / "t.mm"
    path.write_text("""$c wff |- -. $. $v ph $. wph $f wff ph $. wn $a wff -. ph $.
wnn $p wff -. -. ph $= wph wn wn $.
ax-n $a |- -. ph $.
done $p |- -. -. ph $= wph wn ax-n $.
todo $p |- -. -. -. ph $= ? $.
partly $p |- -. -. -. ph $= wph wn wn ? $.
""")
    db = read_database(path)
    assert [t.label for t in splittable(db)] == ["done"]
    assert list(itertools.chain.from_iterable(labels_by_split(db, SplitRatios(1, 0, 0)).values())) == ["done"]


# --- the labels a prover may use -----------------------------------------------------------------


def test_allowed_labels(prop: Database) -> None:
    theorem = prop.assertion("pm2.61d")
    allowed = Context(prop, theorem, forbidden=("pm2.61",)).allowed_labels()
    assert "pm2.61d" not in allowed  # the theorem itself
    assert "pm2.61d1" not in allowed and "bijust" not in allowed  # later
    assert "pm2.61" not in allowed  # forbidden
    assert not {"wn", "wi", "wb"} & set(allowed)  # syntax axioms
    assert {"ax-1", "ax-mp", "pm2.61i", "syl"} <= set(allowed)  # the accepted twins
    expected = [a.label for a in prop.assertions[: theorem.number] if a.typecode == "|-" and a.label != "pm2.61"]
    assert allowed == expected
    assert "pm2.61" in Context(prop, theorem).allowed_labels()


def test_allowed_labels_of_a_made_theorem_are_all_provable_assertions(tmp_path: Path) -> None:
    from core.metamath.prooftree import make_theorem

    db = read_database(embedded_database_path())
    made = make_theorem(db, "goal", ("|-", "(", "ph", "->", "ph", ")"))
    allowed = Context(db, made, forbidden=("id",)).allowed_labels()
    assert len(allowed) == 98 + 7 - 1  # theorems + provable axioms and definitions, less the forbidden one
    assert "id" not in allowed and "anbi12i" in allowed and "df-an" in allowed and "wa" not in allowed
