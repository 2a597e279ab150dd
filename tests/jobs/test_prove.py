"""``python -m jobs.prove``: fills ``?`` proofs so that metamath accepts the output; --only, --split, bad flags."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core.metamath.embedded import embedded_database_path
from core.metamath.reader import read_database
from core.metamath.verifier import verify_database
from core.metamath.writer import rewrite_proofs

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EASY = ["mp2", "syl", "imim2i"]  # the baseline proves these within 64 expansions
HARD = ["com12"]  # ... and not this one, even with 256
HOLES = EASY + HARD


def prove(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs.prove", *map(str, args)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def holes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded database with the proofs of HOLES replaced by ``?``."""
    path = tmp_path_factory.mktemp("prove") / "holes.mm"
    rewrite_proofs(embedded_database_path(), {label: ["?"] for label in HOLES}, path)
    return path


@pytest.fixture(scope="module")
def filled(holes: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = holes.with_name("filled.mm")
    return out, prove(holes, "--out", out, "--expansions", "64")


def test_fills_the_proofs_it_finds(holes: Path, filled) -> None:
    out, run = filled
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert re.fullmatch(r"proved 3 of 4 in \d+\.\d s", lines[-1])
    outcome = {line.split()[0]: line.split()[1] for line in lines[:-1]}
    assert outcome == {**{label: "proved" for label in EASY}, **{label: "failed" for label in HARD}}
    report = verify_database(read_database(out))
    assert report.ok and report.incomplete == HARD
    # everything but the found proofs is untouched: putting the holes back gives the input again
    again = out.with_name("again.mm")
    rewrite_proofs(out, {label: ["?"] for label in EASY}, again)
    assert again.read_bytes() == holes.read_bytes()
    # the proofs are written in compressed form
    text = out.read_text()
    assert re.search(r"mp2 \$p [^$]*\$=\s*\( ", text)


def test_metamath_accepts_the_output(filled, metamath_exe: str) -> None:
    out, run = filled
    assert run.returncode == 0, run.stderr
    check = subprocess.run(
        [metamath_exe, f'read "{out}"', "verify proof *", "exit"], capture_output=True, text=True, timeout=60
    )
    assert "?Error" not in check.stdout and "?Error" not in check.stderr
    assert re.search(r"were not proved:\s+com12\s", check.stdout)
    # the twin: a corrupted proof in the same file is reported by metamath
    bad = out.with_name("bad.mm")
    bad.write_text(out.read_text().replace("mp2 $p |- ch $=", "mp2 $p |- ph $=", 1))
    check = subprocess.run(
        [metamath_exe, f'read "{bad}"', "verify proof *", "exit"], capture_output=True, text=True, timeout=60
    )
    assert "?Error" in check.stdout


def test_only_searches_the_given_labels(holes: Path, tmp_path: Path) -> None:
    out = tmp_path / "only.mm"
    run = prove(holes, "--out", out, "--only", "syl,com12")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert sorted(line.split()[0] for line in lines[:-1]) == ["com12", "syl"]
    assert lines[-1].startswith("proved 1 of 2 in ")
    assert sorted(verify_database(read_database(out)).incomplete) == sorted(["mp2", "imim2i", "com12"])


def test_forward_prover_output_verifies(holes: Path, tmp_path: Path) -> None:
    out = tmp_path / "forward.mm"
    run = prove(holes, "--out", out, "--prover", "forward-greedy", "--expansions", "16", "--only", "mp2")
    assert run.returncode == 0, run.stderr
    assert verify_database(read_database(out)).ok


def test_htps_prover_output_verifies(holes: Path, tmp_path: Path) -> None:
    out = tmp_path / "htps.mm"
    run = prove(holes, "--out", out, "--prover", "htps", "--expansions", "64", "--only", "mp2,syl,com12")
    assert run.returncode == 0, run.stderr
    outcome = {line.split()[0]: line.split()[1] for line in run.stdout.splitlines()[:-1]}
    assert outcome == {"mp2": "proved", "syl": "proved", "com12": "failed"}  # com12: beyond this budget
    report = verify_database(read_database(out))
    assert report.ok and sorted(report.incomplete) == ["com12", "imim2i"]


def test_split_evaluation_writes_json(tmp_path: Path) -> None:
    summary_path = tmp_path / "test.json"
    run = prove(embedded_database_path(), "--split", "test", "--expansions", "16", "--json", summary_path)
    assert run.returncode == 0, run.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["split"] == "test" and summary["policy"] == "baseline"
    assert summary["total"] == len(summary["theorems"]) > 0
    assert run.stdout.splitlines()[-1].startswith(f"proved {summary['proved']} of {summary['total']} in ")
    assert summary["settings"]["expansions"] == 16
    assert summary["settings"]["candidates"] == 32  # the default width, chosen on prop.mm's valid split
    only = summary["theorems"][0]["label"]
    run = prove(
        embedded_database_path(), "--split", "test", "--only", only, "--candidates", "8", "--json", summary_path
    )
    summary = json.loads(summary_path.read_text())
    assert run.returncode == 0 and summary["total"] == 1 and summary["settings"]["candidates"] == 8


def test_truth_table_proves_more_at_a_small_budget_and_is_recorded(tmp_path: Path) -> None:
    proved = {}
    for flag in ("--no-truth-table", "--truth-table"):
        summary_path = tmp_path / f"{flag}.json"
        argv = ["--split", "test", "--expansions", "4", "--candidates", "8", flag, "--json", summary_path]
        run = prove(embedded_database_path(), *argv)
        assert run.returncode == 0, run.stderr
        summary = json.loads(summary_path.read_text())
        assert summary["settings"]["truth_table"] is (flag == "--truth-table")
        proved[flag] = {t["label"] for t in summary["theorems"] if t["proved"]}
    assert proved["--no-truth-table"] < proved["--truth-table"]


@pytest.mark.slow
def test_workers_give_the_same_output(holes: Path, filled, tmp_path: Path) -> None:
    out, _ = filled
    parallel = tmp_path / "parallel.mm"
    run = prove(holes, "--out", parallel, "--expansions", "64", "--workers", "2", "--batch", "2")
    assert run.returncode == 0, run.stderr
    assert parallel.read_bytes() == out.read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "{out}", "--bogus", "1"], "unknown flag --bogus"),
        (["--out", "{out}", "--expansions", "1e3"], "--expansions takes an integer, not '1e3'"),
        (["--out", "{out}", "--prover", "sideways"], "--prover takes one of"),
        ([], "--out OUT.mm is required"),
        (["--out", "{out}", "--only", "ax-mp"], "not among the theorems with an incomplete"),
        (["--out", "{out}", "--checkpoint", "{tmp}/nowhere.pt"], "no such file, folder or URL"),
        (["--out", "{out}", "--checkpoint", "file://{tmp}/nowhere.pt"], "no such file, folder or URL"),
        (["--split", "test", "--out", "{out}"], "--out has no meaning with --split"),
        (["--split", "nope"], "--split takes one of"),
        (["--out", "{out}", "--expansions", "0"], "--expansions: SearchSettings.expansions must be >= 1, got 0"),
        (["--out", "{out}", "--temperature", "-1"], "--temperature: SearchSettings.temperature must be >= 0.0, got -1"),
        (["--out", "{out}", "--timeout-s", "0"], "--timeout-s: SearchSettings.timeout_s must be >= 0.1, got 0"),
        (["--out", "{out}", "--fill-lemmas", "3"], "--fill-lemmas takes true or false, not '3'"),
        (["--out", "{out}", "--truth-table", "3"], "--truth-table takes true or false, not '3'"),
    ],
)
def test_bad_command_lines_exit_2_before_any_work(holes: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out.mm"
    run = prove(holes, *[a.format(out=out, tmp=tmp_path) for a in args])
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


def test_missing_database_exits_2(tmp_path: Path) -> None:
    run = prove(tmp_path / "missing.mm", "--out", tmp_path / "out.mm")
    assert run.returncode == 2 and "no such file" in run.stderr


def test_malformed_database_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mm"
    broken.write_text("$c wff $.\n x $p wff $= ? \n")
    run = prove(broken, "--out", tmp_path / "out.mm")
    assert run.returncode == 1 and "error:" in run.stderr and "Traceback" not in run.stderr


def test_a_device_without_cuda_is_a_usage_error_before_any_work(
    holes: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import torch

    from jobs._cli import main
    from jobs.prove import prove as prove_job

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out.mm"
    code = main(prove_job, [str(holes), "--out", str(out), "--device", "cuda", "--checkpoint", str(holes)])
    err = capsys.readouterr().err
    assert code == 2 and "--device cuda: CUDA is not available on this machine" in err and "Traceback" not in err
    assert not out.exists()
    code = main(prove_job, [str(holes), "--out", str(out), "--device", "cpu", "--only", "mp2", "--expansions", "64"])
    assert code == 0 and out.exists()  # the twin: a device this machine has


# --- the output fits Metamath's conventions -------------------------------------------------------

DISCOURAGED = """$c ( ) -> wff |- $.
$v ph ps $.
wph $f wff ph $.
wps $f wff ps $.
wi $a wff ( ph -> ps ) $.
$( The only axiom.  (New usage is discouraged.) $)
ax-old $a |- ( ph -> ( ps -> ph ) ) $.
th $p |- ( ph -> ( ps -> ph ) ) $= ? $.
"""


def test_discouraged_theorems_are_not_cited(tmp_path: Path) -> None:
    source, out = tmp_path / "old.mm", tmp_path / "out.mm"
    source.write_text(DISCOURAGED)
    run = prove(source, "--out", out, "--expansions", "16")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].startswith("proved 0 of 1 ")
    assert read_database(out).assertion("th").proof == ("?",)


@pytest.mark.parametrize("how", ["--allow-discouraged", "no mark"])
def test_discouraged_theorems_are_cited_with_the_flag_or_without_the_mark(
    tmp_path: Path, metamath_exe: str, how: str
) -> None:
    source, out = tmp_path / "old.mm", tmp_path / "out.mm"
    source.write_text(DISCOURAGED.replace("  (New usage is discouraged.)", "") if how == "no mark" else DISCOURAGED)
    run = prove(source, "--out", out, "--expansions", "16", *([how] if how.startswith("--") else []))
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].startswith("proved 1 of 1 ")
    assert "ax-old" in read_database(out).assertion("th").proof
    check = subprocess.run(
        [metamath_exe, f'read "{out}"', "verify proof *", "exit"], capture_output=True, text=True, timeout=60
    )
    assert "?Error" not in check.stdout and "were not proved" not in check.stdout


@pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["CRLF", "LF"])
def test_the_output_keeps_the_input_line_endings_and_metamath_accepts_it(
    holes: Path, tmp_path: Path, metamath_exe: str, newline: str
) -> None:
    source, out = tmp_path / "holes.mm", tmp_path / "filled.mm"
    source.write_bytes(holes.read_bytes().replace(b"\n", newline.encode()))
    run = prove(source, "--out", out, "--only", "syl")
    assert run.returncode == 0, run.stderr
    data = out.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") if newline == "\r\n" else b"\r" not in data
    assert all(len(line) <= 79 for line in data.decode().splitlines())
    check = subprocess.run(
        [metamath_exe, f'read "{out.name}"', "verify proof *", "exit"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert "?Error" not in check.stdout and re.search(r"were not proved:\s+mp2, imim2i, com12\s", check.stdout)


# --- the user's files: never overwritten by accident, checked before the search ---------------------


@pytest.mark.parametrize("how", ["same path", "symbolic link", "hard link"])
def test_out_equal_to_the_input_is_refused(holes: Path, tmp_path: Path, how: str) -> None:
    source = tmp_path / "holes.mm"
    source.write_bytes(holes.read_bytes())
    out = {"same path": source, "symbolic link": tmp_path / "link.mm", "hard link": tmp_path / "hard.mm"}[how]
    if how == "symbolic link":
        out.symlink_to(source)
    elif how == "hard link":
        os.link(source, out)
    run = prove(source, "--out", out, "--only", "syl")
    assert run.returncode == 2 and "is the input file" in run.stderr and "--in-place" in run.stderr, run.stderr
    assert run.stdout == "" and source.read_bytes() == holes.read_bytes()


@pytest.mark.parametrize("how", ["same path", "symbolic link", "hard link"])
def test_in_place_fills_the_input_keeping_its_mode_and_links(holes: Path, tmp_path: Path, how: str) -> None:
    source = tmp_path / "holes.mm"
    source.write_bytes(holes.read_bytes())
    source.chmod(0o600)
    out = {"same path": source, "symbolic link": tmp_path / "link.mm", "hard link": tmp_path / "hard.mm"}[how]
    if how == "symbolic link":
        out.symlink_to(source)
    elif how == "hard link":
        os.link(source, out)
    run = prove(source, "--out", out, "--only", "syl", "--in-place")
    assert run.returncode == 0, run.stderr
    assert sorted(verify_database(read_database(source)).incomplete) == sorted(["mp2", "imim2i", "com12"])
    assert stat.S_IMODE(source.stat().st_mode) == 0o600
    if how == "symbolic link":
        assert out.is_symlink() and out.resolve() == source
    if how == "hard link":
        assert out.stat().st_ino == source.stat().st_ino and source.stat().st_nlink == 2


@pytest.mark.parametrize("flag", ["--out", "--json"])
def test_an_output_in_a_missing_folder_fails_before_the_search(holes: Path, tmp_path: Path, flag: str) -> None:
    target = tmp_path / "missing" / "x"
    others = ["--json", tmp_path / "r.json"] if flag == "--out" else ["--out", tmp_path / "o.mm"]
    run = prove(holes, flag, target, *others)
    assert run.returncode == 2 and f"{flag} {target}" in run.stderr and "does not exist" in run.stderr, run.stderr
    assert run.stdout == "" and not (tmp_path / "r.json").exists() and not (tmp_path / "o.mm").exists()
    twin = prove(holes, flag, tmp_path / "x", *others, "--only", "syl")
    assert twin.returncode == 0, twin.stderr
    assert (tmp_path / "x").is_file()


def test_in_place_without_out_is_refused(tmp_path: Path) -> None:
    run = prove(embedded_database_path(), "--split", "test", "--in-place")
    assert run.returncode == 2 and "--in-place needs --out" in run.stderr


def test_json_and_out_are_written_without_following_planted_symlinks(holes: Path, tmp_path: Path, monkeypatch) -> None:
    from jobs.prove import prove as prove_function

    out, summary, victim = tmp_path / "o.mm", tmp_path / "r.json", tmp_path / "victim.txt"
    victim.write_text("precious\n")
    planted = [tmp_path / f"{name}.tmp-{os.getpid()}" for name in ("o.mm", "r.json")]
    for link in planted:
        link.symlink_to(victim)
    assert prove_function(str(holes), out=str(out), json=str(summary), only=["syl"]) == 0
    assert victim.read_text() == "precious\n" and all(link.is_symlink() for link in planted)
    assert json.loads(summary.read_text())["proved"] == 1
    assert verify_database(read_database(out)).ok


def test_an_output_that_is_an_included_file_is_refused(holes: Path, tmp_path: Path) -> None:
    part = tmp_path / "part.mm"
    part.write_bytes(holes.read_bytes())
    main = tmp_path / "main.mm"
    main.write_text("$[ part.mm $]\n")
    run = prove(main, "--out", part, "--in-place")
    assert run.returncode == 2 and "a file that" in run.stderr and "includes" in run.stderr, run.stderr
    assert part.read_bytes() == holes.read_bytes() and run.stdout == ""
    twin = prove(main, "--out", tmp_path / "out.mm", "--only", "syl")
    assert twin.returncode == 0, twin.stderr


@pytest.mark.parametrize("json_path", ["{db}", "{out}"])
def test_json_may_be_neither_the_input_nor_out(holes: Path, tmp_path: Path, json_path: str) -> None:
    source, out = tmp_path / "holes.mm", tmp_path / "out.mm"
    source.write_bytes(holes.read_bytes())
    run = prove(source, "--out", out, "--json", json_path.format(db=source, out=out))
    assert run.returncode == 2 and "--json" in run.stderr and run.stdout == "", run.stderr
    assert source.read_bytes() == holes.read_bytes() and not out.exists()
