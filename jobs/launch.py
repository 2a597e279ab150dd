"""The launcher: creates or resumes an experiment, runs every role job through submitit, supervises, reports.

    ./launch.sh                                   the main job: a bounded local run of the default preset
    ./launch.sh local --preset NAME --exp DIR [--minutes N] [--set key=value ...]
    ./launch.sh slurm --preset NAME --exp DIR [--minutes N] [--set key=value ...]
    ./launch.sh stop --exp DIR                    ask the jobs of a run to finish their step and exit
    ./launch.sh config --preset NAME [--set key=value ...] | --exp DIR
                                                  print every setting: value, help text, default

Everything is checked before anything is created: the preset and overrides (applied together, then
validated), the database (read once: it must parse and hold theorems), --minutes, ADVPROVER_THREADS.

The experiment's configuration (the preset with its overrides, the database resolved to a file) is frozen
into DIR when it is created; launching again on DIR with the same preset and overrides resumes it, with
different ones fails and names the differences, except that placement settings (``slurm.*``) may
change: the run uses the new ones and records the change in its ``runs/<stamp>-<cluster>/launch.json``.
Locally every job is a process (submitit's local executor); on SLURM a job per role rank (an array per
role), a trainer group one multi-task job, with the preset's ``slurm.*`` resources. Jobs that die are
restarted with backoff; a job that keeps dying stops the run and its log's tail is shown; a run in which
no job published anything (no shard, no checkpoint) exits 1. Every job gets the run's deadline; the
evaluator gets a little longer, so that it evaluates the last prover version before the summary. See
docs/LAUNCH.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from configs.databases import check_database, describe_database, resolve_database
from configs.experiment import (
    ROLES,
    ExperimentConfig,
    SlurmResources,
    placement_changes,
    with_placement_of,
    without_new_defaults,
)
from configs.presets import PRESETS, preset
from core.adversarial.records import EvaluationRecord
from core.adversarial.topology import PROVER_CHECKPOINTS, job_name, wiring_of
from core.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, AdvproverError, UsageError, exit_status, report
from core.storage import CheckpointStore, ExperimentRoot, inspect_root, stream_bounds
from jobs._cli import configure_logging
from jobs._lock import (
    LOCK_FILE,
    LauncherLock,
    holder_alive,
    job_alive,
    read_lock,
    refuse_if_held,
    wait_for_earlier_jobs,
)
from jobs._supervise import Slot, Supervisor
from jobs.status import Follower, collect, proof_size_lines

logger = logging.getLogger("jobs.launch")

PROJECT = Path(__file__).resolve().parents[1]
MAIN_PRESET, MAIN_MINUTES = "default", 10.0
MINUTES_ENV = "ADVPROVER_MINUTES"  # the main job's duration when --minutes is not given (e.g. CI's short run)
PROGRESS_SECONDS = 12.0
KILL_GRACE_S = 120.0
RUNS_DIR = "runs"
RUNS_ENV = "ADVPROVER_RUNS"  # where launches of experiments at URLs keep their logs and lock (default below)
RUN_RECORD = "launch.json"
EARLIER_JOBS_WAIT_S = 120.0  # how long a resume waits for jobs of a dead launcher to stop
COMMANDS = ("local", "slurm", "stop", "config")
THREADS_VARIABLE = "ADVPROVER_THREADS"


# --- command line ---------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    presets = ", ".join(PRESETS)
    top = argparse.ArgumentParser(
        prog="launch.sh",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        description="Run an advprover experiment: every role as a supervised job, locally or on SLURM.",
        epilog=f"presets: {presets}\n\nWith no command: the main job, a {MAIN_MINUTES:g}-minute (or ${MINUTES_ENV}) "
        f"local run of the '{MAIN_PRESET}' preset in a new folder under $ADVPROVER_EXPERIMENTS "
        "(default: ./experiments).\n"
        "Resume: the same command on the same --exp. Inspect: python -m jobs.status DIR [--json] [--plot P.png]",
    )
    commands = top.add_subparsers(dest="command", metavar="{local,slurm,stop,config}")
    for name, text in (
        ("local", "run on this machine, one process per job"),
        ("slurm", "run on a SLURM cluster (sbatch), one job per role rank"),
    ):
        sub = commands.add_parser(name, help=text, description=text, epilog=f"presets: {presets}", allow_abbrev=False)
        sub.add_argument("--preset", required=True, help="a named preset (see the list below)")
        sub.add_argument("--exp", required=True, help="the experiment folder: created, or resumed if it exists")
        add_run_options(sub)
    stop = commands.add_parser(
        "stop", help="ask a run's jobs to finish their current step and exit", allow_abbrev=False
    )
    stop.add_argument("--exp", required=True, help="the experiment folder")
    stop.add_argument(
        "--wait", type=seconds(allow_zero=True), default=120.0, help="seconds to wait for the jobs to end (0: don't)"
    )
    show = commands.add_parser(
        "config",
        help="print every setting of a preset (or an experiment): value, help, default",
        description="print the resolved configuration",
        allow_abbrev=False,
    )
    show.add_argument("--preset", help="a named preset (see the list below)")
    show.add_argument("--exp", help="an existing experiment folder: print its frozen configuration")
    show.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of the preset (repeatable), as for local and slurm",
    )
    return top


def seconds(allow_zero: bool = False) -> Any:
    """An argparse type: a finite number of seconds, > 0 (or >= 0 with ``allow_zero``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"must be a finite number of seconds {'>=' if allow_zero else '>'} 0, got {text!r}"
            )
        return value

    parse.__name__ = "seconds"
    return parse


def count(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return int(text)


def add_run_options(
    sub: argparse.ArgumentParser, default_minutes: str = "the longest SLURM time of the roles, or 60"
) -> None:
    sub.add_argument(
        "--minutes",
        type=float,
        default=None,
        help=f"how long the run lasts (each launch or resume runs this long; default: {default_minutes})",
    )
    sub.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of the preset, e.g. --set prover_actor.count=2 (repeatable)",
    )
    sub.add_argument(
        "--max-failures",
        type=count,
        default=5,
        help="restarts of a job dying within a minute of its start before the run gives up",
    )
    sub.add_argument("--progress", type=seconds(), default=PROGRESS_SECONDS, help="seconds between progress blocks")
    sub.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def main_parser() -> argparse.ArgumentParser:
    sub = argparse.ArgumentParser(
        prog="launch.sh", description="the main job (see ./launch.sh --help)", allow_abbrev=False
    )
    sub.add_argument("--preset", default=MAIN_PRESET, help=argparse.SUPPRESS)
    sub.add_argument("--exp", default="", help="the experiment folder (default: a new one)")
    add_run_options(sub, default_minutes=f"${MINUTES_ENV} if set, else {MAIN_MINUTES:g}")
    return sub


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    is_main = not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"))
    args = (main_parser() if is_main else parser()).parse_args(argv)  # exits 2 on bad flags
    if is_main:
        args.command = "local"
        args.exp = args.exp or default_experiment_folder(args.preset)
    configure_logging(getattr(args, "log_level", "INFO"))
    quiet_libraries()
    try:
        if args.command == "stop":
            return stop(args.exp, args.wait)
        if args.command == "config":
            return show_config(args.preset, args.exp, args.set)
        minutes = main_job_minutes(os.environ) if is_main and args.minutes is None else args.minutes
        run = prepare(args.command, args.preset, args.exp, args.set, minutes)
    except AdvproverError as error:
        return report(error)
    except OSError as error:  # a read-only or full experiment folder, a vanished mount
        print(
            f"error: {error.filename or args.exp}: {error.strerror or error} (the experiment folder must be "
            "writable by you and have space left)",
            file=sys.stderr,
        )
        return exit_status(error)
    return launch(
        run, max_failures=args.max_failures, progress_s=args.progress, log_level=args.log_level, main_job=is_main
    )


def main_job_minutes(environment: Mapping[str, str]) -> float:
    """The main job's duration: $ADVPROVER_MINUTES if set (a positive finite number), else MAIN_MINUTES."""
    text = environment.get(MINUTES_ENV, "").strip()
    if not text:
        return MAIN_MINUTES
    try:
        minutes = float(text)
    except ValueError:
        minutes = math.nan
    if not (math.isfinite(minutes) and minutes > 0):
        raise UsageError(f"${MINUTES_ENV} must be a positive number of minutes, e.g. {MINUTES_ENV}=2, got {text!r}")
    return minutes


def quiet_libraries() -> None:
    for name in ("core.storage.checkpoints", "core.storage.root", "submitit"):
        logging.getLogger(name).setLevel(logging.WARNING)


def default_experiment_folder(preset_name: str) -> str:
    parent = os.environ.get("ADVPROVER_EXPERIMENTS") or str(PROJECT / "experiments")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(parent, f"{preset_name}-{stamp}")


# --- preparing a run --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    cluster: str
    exp: str
    config: ExperimentConfig
    overrides: list[str]
    minutes: float
    resumed: bool
    folder: Path  # this launch's submitit folder: logs, pickles
    placement_changes: list[str] = dataclasses.field(default_factory=list)  # slurm.* changed on resume


def check_folder(exp: str, *, must_exist: bool) -> str:
    """The experiment's location: an absolute path for a local folder (or ``file://``), else its URL.

    UsageError for an empty name, a file, a folder holding something else, a ``memory://`` URL (the jobs
    are other processes); StorageError (exit 1) when the URL's filesystem package is not installed.
    """
    if not exp or not exp.strip():
        raise UsageError("--exp must name a folder")
    is_url = "://" in exp and not exp.startswith("file://")
    location = exp.rstrip("/") if is_url else os.path.abspath(os.path.expanduser(exp.removeprefix("file://")))
    root = inspect_root(location)
    if not root.shared_across_processes:
        raise UsageError(
            f"--exp {exp!r}: a memory:// experiment lives in one process, and every job is its own "
            "process; use a folder, a file:// URL or an object store (s3://bucket/exp)"
        )
    if root.kind == "file":
        raise UsageError(f"--exp {exp!r} is a file, not a folder")
    if must_exist and root.kind != "experiment":
        raise UsageError(f"--exp {exp!r}: no experiment there (no config.json)")
    if root.kind == "occupied":
        raise UsageError(f"--exp {exp!r} exists and is not an experiment (no config.json): choose a new folder")
    return location


def runs_folder(exp: str) -> Path:
    """Where launches of ``exp`` keep their submitit folders and lock: ``DIR/runs`` for a folder; for a URL, a
    local folder named after it under ``$ADVPROVER_RUNS`` (default ``./experiments/runs``), which on SLURM
    must be on storage the nodes share."""
    if "://" not in exp:
        return Path(exp) / RUNS_DIR
    parent = Path(os.environ.get(RUNS_ENV) or PROJECT / "experiments" / RUNS_DIR)
    return parent / re.sub(r"[^A-Za-z0-9._-]+", "_", exp).strip("_")


def prepare(cluster: str, preset_name: str, exp: str, overrides: list[str], minutes: float | None) -> Run:
    """Validate everything, then create or reopen the experiment (nothing starts before this succeeds)."""
    if preset_name not in PRESETS:
        raise UsageError(f"unknown preset {preset_name!r}; presets: {', '.join(PRESETS)}")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise UsageError(f"--set {bad[0]!r} must read key=value, e.g. --set prover_actor.count=2")
    path = check_folder(exp, must_exist=False)
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise UsageError("no SLURM here (sbatch is not on PATH); use `local`, or run this on a cluster login node")
    config = resolved_config(preset_name, overrides)
    if minutes is None:
        minutes = float(max(getattr(config.slurm, r).time_minutes for r in ROLES)) if cluster == "slurm" else 60.0
    if not (math.isfinite(minutes) and minutes > 0):
        raise UsageError(f"--minutes must be > 0 (a finite number of minutes), got {minutes:g}")
    if cluster == "local":
        local_threads()
    resumed = inspect_root(path).kind == "experiment"
    refuse_if_held(runs_folder(path), path)
    wanted, changes = config.to_dict(), []
    if resumed:
        frozen = ExperimentRoot.open(path).config
        changes = placement_changes(frozen, wanted)
        wanted = without_new_defaults(with_placement_of(wanted, frozen), frozen)
    root = ExperimentRoot.create_or_open(path, wanted)
    if resumed:
        wait_for_earlier_jobs(
            path,
            lambda: [j["job"] for j in collect_jobs(root) if job_alive(j)],
            lambda jobs: root.request_stop("a new launcher resumes the experiment", jobs=jobs),
            EARLIER_JOBS_WAIT_S,
        )
    root.clear_stop()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = runs_folder(path) / f"{stamp}-{cluster}"
    return Run(cluster, path, config, list(overrides), minutes, resumed, folder, changes)


def resolved_config(preset_name: str, overrides: list[str]) -> ExperimentConfig:
    """The preset with every override applied, validated, its database resolved to a file and read once."""
    config = preset(preset_name).with_overrides(overrides)
    config = dataclasses.replace(config, database=resolve_database(config.database))
    check_database(config.database)
    return config


def local_threads() -> int:
    """Torch threads of each local job: ``$ADVPROVER_THREADS`` (a positive integer), else 1."""
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    if not text:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise UsageError(
            f"{THREADS_VARIABLE} must be a positive integer (threads per local job), got {text!r}; "
            f"unset it or set e.g. {THREADS_VARIABLE}=2"
        )
    return int(text)


# --- running ----------------------------------------------------------------------------------------------


def slots_of(config: ExperimentConfig) -> list[Slot]:
    """The jobs to supervise, as the wiring table says: one slot per job, or one per data-parallel group."""
    wiring = wiring_of(config)
    slots = []
    for run in wiring.runs:
        size = wiring.group_size(run.role)
        if size > 1:
            slots.append(Slot(run.role, list(range(run.count)), group_size=size))
        else:
            slots += [Slot(run.role, [rank]) for rank in range(run.count)]
    return slots


def deadlines_of(config: ExperimentConfig, minutes: float, start: float) -> dict[str, float]:
    """Every role ends at the run's end, but the evaluator keeps a reserve to evaluate the last version."""
    end = start + 60 * minutes
    reserve = min(max(0.15 * 60 * minutes, 20.0), 120.0) if config.evaluator.count else 0.0
    return {role: end if role == "evaluator" else end - reserve for role in ROLES}


class Executors:
    """One submitit executor per role (its name and resources), all in this launch's folder."""

    def __init__(self, run: Run, minutes: float) -> None:
        self.run = run
        self.minutes = minutes
        self._cache: dict[str, Any] = {}

    def __call__(self, role: str) -> Any:
        import submitit

        if role in self._cache:
            return self._cache[role]
        run = self.run
        folder = run.folder
        if run.cluster == "local":
            executor = submitit.AutoExecutor(folder=folder, cluster="local")
            executor.update_parameters(timeout_min=int(self.minutes + 30), name=f"advprover-{role}")
        else:
            resources: SlurmResources = getattr(run.config.slurm, role)
            executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=1000)
            tasks = wiring_of(run.config).group_size(role)  # a trainer group is one job, one task per rank
            extra: dict[str, Any] = {}
            if resources.partition:
                extra["slurm_partition"] = resources.partition
            if resources.gpus:
                extra["gpus_per_node"] = resources.gpus * tasks
            if run.config.slurm.account:
                extra["slurm_account"] = run.config.slurm.account
            if run.config.slurm.qos:
                extra["slurm_qos"] = run.config.slurm.qos
            executor.update_parameters(
                name=f"advprover-{role}",
                timeout_min=resources.time_minutes,
                nodes=1,
                tasks_per_node=tasks,
                cpus_per_task=resources.cpus,
                mem_gb=resources.mem_gb * tasks,
                **extra,
            )
        self._cache[role] = executor
        return executor

    def threads(self, role: str) -> int:
        if self.run.cluster == "local":
            return local_threads()
        return getattr(self.run.config.slurm, role).cpus


def make_private_folder(folder: Path) -> None:
    """Create this launch's folder readable and writable by the user alone (mode 0700): submitit keeps the
    jobs' pickles there, which the jobs and the launcher unpickle (see docs/PROTOCOL.md, threat model)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (folder.parent, folder):
        os.chmod(path, 0o700)


def launch(run: Run, *, max_failures: int, progress_s: float, log_level: str, main_job: bool) -> int:
    config = run.config
    start = time.time()
    deadlines = deadlines_of(config, run.minutes, start)
    make_private_folder(run.folder)
    lock = LauncherLock(run.folder.parent, run.exp, {"started": start, "folder": str(run.folder)})
    try:
        lock.acquire()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    write_run_record(run, start, deadlines)
    print(banner(run, main_job), flush=True)
    work_before = work_published(run.exp)
    executors = Executors(run, run.minutes)
    supervisor = Supervisor(
        run.exp,
        slots_of(config),
        deadlines,
        cluster=run.cluster,
        executor_for=executors,
        threads_for=executors.threads,
        max_failures=max_failures,
        log_level=log_level,
    )
    progress = Progress(run, start)
    interrupted: list[int] = []
    previous = {s: signal.signal(s, lambda n, f: interrupted.append(n)) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        supervisor.start_due()
        final_stop_sent = False
        while supervisor.running:
            if interrupted:
                return interrupt(run, supervisor, progress)
            supervisor.poll()
            if supervisor.fatal is not None:
                return give_up(run, supervisor)
            if not final_stop_sent and final_evaluation_done(run, supervisor, progress):
                ExperimentRoot.open(run.exp).request_stop(
                    "the last prover version is evaluated", jobs=[job_name("evaluator", 0)]
                )
                final_stop_sent = True
            kill_at = kill_time(deadlines, progress.follower.evaluations)
            if time.time() > kill_at:
                logger.warning(
                    "jobs still running %.0f s after the deadline: stopping them", kill_at - max(deadlines.values())
                )
                supervisor.kill_all()
                break
            progress.maybe_print(supervisor, progress_s)
            lock.beat()
            time.sleep(1.0)
        if final_stop_sent:
            root = ExperimentRoot.open(run.exp)
            if (root.stop_request() or {}).get("jobs") == [job_name("evaluator", 0)]:
                root.clear_stop()
        progress.print_block(supervisor)
        text, reconciled = summary(run, supervisor, start)
        print(text, flush=True)
        if work_published(run.exp) == work_before:
            print(
                f"error: no job published anything in this run (no shard, no checkpoint); see the job logs in "
                f"{run.folder}",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_FAILURE
        return EXIT_OK if reconciled else EXIT_FAILURE
    except Exception as error:
        logger.debug("the launcher failed", exc_info=True)
        print(
            f"error: the launcher failed ({type(error).__name__}: {error}); stopping every job. Fix the "
            f"cause, then resume with: {resume_command(run)}",
            file=sys.stderr,
            flush=True,
        )
        supervisor.kill_all()
        return EXIT_FAILURE
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        lock.release()


def write_run_record(run: Run, start: float, deadlines: dict[str, float]) -> None:
    """This launch's ``launch.json``: its command, deadlines, and the placement settings it changed."""
    record = run.folder / RUN_RECORD
    record.write_text(
        json.dumps(
            {
                "command": resume_command(run),
                "cluster": run.cluster,
                "minutes": run.minutes,
                "started": start,
                "deadlines": deadlines,
                "resumed": run.resumed,
                "placement_changes": run.placement_changes,
            },
            indent=1,
        )
    )
    if run.placement_changes:
        logger.warning(
            "placement settings differ from the experiment's config.json; this run uses the new ones "
            "(recorded in %s): %s",
            record,
            "; ".join(run.placement_changes),
        )


def work_published(exp: str) -> dict[str, int]:
    """What the jobs have published: the end of every stream and the newest version of every checkpoint."""
    root = ExperimentRoot.open(exp)
    published = {f"stream {name}": stream_bounds(root, name)[1] for name in root.streams()}
    for name in root.checkpoint_names():
        latest = CheckpointStore(root, name).latest()
        published[f"checkpoint {name}"] = -1 if latest is None else latest.version
    return published


def kill_time(deadlines: dict[str, float], evaluations: Sequence[EvaluationRecord]) -> float:
    """When jobs still running are killed: 2 minutes after the last deadline, or long enough after it for
    one more evaluation when the evaluator's evaluations take longer (it may start the last version's
    just before its deadline)."""
    longest = max((e.seconds for e in evaluations), default=0.0)
    return max(deadlines.values()) + max(KILL_GRACE_S, 1.25 * longest + 30.0)


def final_evaluation_done(run: Run, supervisor: Supervisor, progress: Progress) -> bool:
    """True once every job but the evaluator ended and the newest prover version has been evaluated."""
    evaluator = [s for s in supervisor.slots if s.role == "evaluator"]
    if not evaluator or evaluator[0].done or any(not s.done for s in supervisor.slots if s.role != "evaluator"):
        return False
    latest = CheckpointStore(ExperimentRoot.open(run.exp), PROVER_CHECKPOINTS).latest()
    progress.follower.update()
    return latest is not None and progress.follower.evaluated(latest.version)


def interrupt(run: Run, supervisor: Supervisor, progress: Progress) -> int:
    print(
        "\ninterrupted: asking the jobs to finish their current step (interrupt again to kill them)...",
        file=sys.stderr,
        flush=True,
    )
    ExperimentRoot.open(run.exp).request_stop("the launcher was interrupted")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        deadline = time.time() + 60
        while supervisor.running and time.time() < deadline:
            supervisor.poll()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    supervisor.kill_all()
    print(f"stopped. Resume with: {resume_command(run)}", file=sys.stderr)
    return 130


def give_up(run: Run, supervisor: Supervisor) -> int:
    slot = supervisor.fatal if supervisor.fatal is not None else supervisor.slots[0]
    ExperimentRoot.open(run.exp).request_stop(f"{slot.name} kept dying")
    print(
        f"\nerror: {slot.name} died {slot.failures} times in a row (last: "
        f"{slot.last_error.strip().splitlines()[-1] if slot.last_error.strip() else '?'}); "
        "stopping the run.",
        file=sys.stderr,
    )
    print(supervisor.log_tail(slot), file=sys.stderr)
    deadline = time.time() + 30
    while supervisor.running and time.time() < deadline:
        supervisor.poll()
        time.sleep(0.5)
    supervisor.kill_all()
    print(f"\nfix the cause, then resume with: {resume_command(run)}", file=sys.stderr)
    return EXIT_FAILURE


# --- what the user sees ------------------------------------------------------------------------------------


def resume_command(run: Run) -> str:
    words = [
        "./launch.sh",
        run.cluster,
        "--preset",
        run.config.preset,
        "--exp",
        run.exp,
        "--minutes",
        f"{run.minutes:g}",
    ]
    for override in run.overrides:
        words += ["--set", override]
    return " ".join(shlex.quote(w) for w in words)


def banner(run: Run, main_job: bool) -> str:
    config = run.config
    roles = ", ".join(f"{config.role_count(r)} {r.replace('_', ' ')}" for r in ROLES if config.role_count(r))
    what = "resuming" if run.resumed else "new experiment"
    return (
        f"advprover: {what} {run.exp}\n"
        f"  preset {config.preset} (setup {config.setup}) on {describe_database(config.database)}\n"
        f"  {roles}; {run.cluster}, {run.minutes:g} min; logs in {run.folder}\n"
        f"  stop early: ./launch.sh stop --exp {shlex.quote(run.exp)}   (Ctrl-C also stops cleanly)"
    )


class Progress:
    """Prints a compact block every few seconds: per job its version, records/s, state."""

    def __init__(self, run: Run, start: float) -> None:
        self.run = run
        self.start = start
        self.root = ExperimentRoot.open(run.exp)
        self.follower = Follower(self.root, run.config)
        self.printed = 0.0
        self.previous: dict[str, tuple[float, float]] = {}

    def maybe_print(self, supervisor: Supervisor, every_s: float) -> None:
        if time.time() - self.printed >= every_s:
            self.print_block(supervisor)

    def print_block(self, supervisor: Supervisor) -> None:
        from core.storage import read_heartbeats

        self.printed = now = time.time()
        try:
            self.follower.update()
            beats = {job_name(b["role"], b["rank"]): b for b in read_heartbeats(self.root) if b.get("role") in ROLES}
        except AdvproverError as error:
            print(f"(progress unavailable: {error})", flush=True)
            return
        f = self.follower
        elapsed, total = (now - self.start) / 60, self.run.minutes
        rate = f"{100 * f.proved / f.results:.0f}% proved" if f.results else "none tried yet"
        lines = [
            f"[{elapsed:5.1f}/{total:g} min] generations {f.generations}, results {f.results} ({rate})"
            + self.evaluation_text()
        ]
        for slot in supervisor.slots:
            for name in slot.job_names:
                lines.append("  " + self.job_line(name, slot, beats.get(name), now))
        print("\n".join(lines), flush=True)

    def evaluation_text(self) -> str:
        evaluations = self.follower.evaluations
        baseline = next((e for e in evaluations if e.version == "baseline"), None)
        versions = [e for e in evaluations if isinstance(e.version, int)]
        parts = []
        if baseline:
            parts.append(f"baseline {100 * baseline.success_rate:.1f}%")
        if versions:
            last = max(versions, key=lambda e: int(e.version))
            parts.append(f"prover v{last.version} {100 * last.success_rate:.1f}%")
        return f"; benchmark: {', '.join(parts)}" if parts else ""

    def job_line(self, name: str, slot: Slot, beat: dict[str, Any] | None, now: float) -> str:
        if slot.done:
            state = slot.outcome or "done"
        elif slot.next_start is not None:
            state = f"restarting in {max(slot.next_start - now, 0):.0f}s"
        elif beat is None or beat.get("pid") is None:
            state = "starting"
        else:
            state = str(beat.get("state", ""))
        beat = beat or {}
        version = next(
            (
                f"v{beat[k]}"
                for k in ("generator_version", "prover_version", "version", "last_version")
                if isinstance(beat.get(k), int)
            ),
            "-",
        )
        count_key = (
            "step" if slot.role.endswith("trainer") else "evaluations" if slot.role == "evaluator" else "records_out"
        )
        count = float(beat.get(count_key) or 0)
        last_count, last_time = self.previous.get(name, (count, now - 1e9))
        rate = max(count - last_count, 0) / max(now - last_time, 1e-9) if name in self.previous else 0.0
        self.previous[name] = (count, now)
        unit = {"step": "steps/s", "evaluations": "evals", "records_out": "records/s"}[count_key]
        extra = ""
        if slot.role == "prover_actor" and beat.get("attempted"):
            extra = f"  {100 * beat.get('proved', 0) / beat['attempted']:.0f}% proved"
        if slot.role == "evaluator":
            shown = f"{int(count)} {unit}"
        else:
            shown = f"{rate:6.2f} {unit}"
        restarts = f"  ({slot.restarts} restarts)" if slot.restarts else ""
        return f"{name:<22} {version:>5}  {shown:<16} {state[:36]:<36}{extra}{restarts}"


def summary(run: Run, supervisor: Supervisor, start: float) -> tuple[str, bool]:
    """The end-of-run report, and whether every count reconciles."""
    status = collect(ExperimentRoot.open(run.exp))
    t = status["totals"]
    by_source = ", ".join(f"{n} from the {s}" for s, n in sorted(t["generations_by_source"].items())) or "none"
    lines = ["", f"== advprover: run ended after {(time.time() - start) / 60:.1f} min =="]
    lines.append(f"generated   {t['generations']} theorems ({by_source})")
    if t["results"]:
        rate = f"{100 * t['generated_success_rate']:.1f}%" if t["generated_success_rate"] is not None else "-"
        lines.append(
            f"proved      {t['proved']} of the {t['results']} the prover tried (generated theorems proved: {rate})"
        )
    if t["generations"]:
        for line in proof_size_lines(status):  # aligned with the summary's other lines
            line = line.replace("proof sizes (essential steps): ", "sizes       ", 1)
            lines.append(line.replace("generated theorems proved over time: ", "over time   proved ", 1))
    trained = [
        f"{name} v{c['latest']} (step {c.get('step')})"
        for name, c in status["checkpoints"].items()
        if c["latest"] is not None
    ]
    if trained:
        lines.append(f"models      {', '.join(trained)}")
    first, last = t["first_evaluation"], t["last_evaluation"]
    if first:
        bench = status["evaluations"][0].get("benchmark") or "benchmark"
        base = t["baseline_success_rate"]
        lines.append(
            f"benchmark   {bench} ({first['total']} theorems): prover v{first['version']} "
            f"{100 * first['success_rate']:.1f}% -> v{last['version']} {100 * last['success_rate']:.1f}%"
            + (f"   (model-free baseline {100 * base:.1f}%)" if base is not None else "")
        )
        latest = status["checkpoints"].get(PROVER_CHECKPOINTS, {}).get("latest")
        if latest is not None and last["version"] != latest:
            lines.append(f"            (the last prover version, v{latest}, was not evaluated in time)")
    failed = [c for c in status["checks"] if not c["ok"]]
    lines.append(
        f"checks      {len(status['checks']) - len(failed)} of {len(status['checks'])} reconcile"
        + "".join(f"; FAILED {c['check']}: {c['detail']}" for c in failed)
    )
    restarts = sum(s.restarts for s in supervisor.slots)
    if restarts:
        lines.append(
            f"restarts    {restarts} ({', '.join(f'{s.name} {s.restarts}' for s in supervisor.slots if s.restarts)})"
        )
    lines.append(f"experiment  {run.exp}")
    lines.append(f"resume      {resume_command(run)}")
    lines.append(
        f"inspect     python -m jobs.status {shlex.quote(run.exp)}   "
        f"(--json; --plot {shlex.quote(plot_path_of(run.exp))})"
    )
    if status["tensorboard"]["runs"]:
        lines.append(f"metrics     tensorboard --logdir {shlex.quote(status['tensorboard']['logdir'])}")
    return "\n".join(lines), not failed


def plot_path_of(exp: str) -> str:
    """Where the summary suggests writing the status plot: in the experiment folder, or here for a URL."""
    return "status.png" if "://" in exp else os.path.join(exp, "status.png")


# --- config ----------------------------------------------------------------------------------------------


def show_config(preset_name: str | None, exp: str | None, overrides: list[str]) -> int:
    """Print every setting of a preset with overrides (or of an existing experiment): value, help, default."""
    from configs.schema import render_settings

    if (preset_name is None) == (exp is None):
        raise UsageError("config takes --preset NAME (with any --set key=value) or --exp DIR, one of the two")
    if exp is not None:
        if overrides:
            raise UsageError("--set has no meaning with --exp (an experiment's configuration is frozen)")
        path = check_folder(exp, must_exist=True)
        config = ExperimentConfig.from_dict(ExperimentRoot.open(path).config)
        title = f"# the frozen configuration of {path}"
    else:
        if preset_name not in PRESETS:
            raise UsageError(f"unknown preset {preset_name!r}; presets: {', '.join(PRESETS)}")
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise UsageError(f"--set {bad[0]!r} must read key=value, e.g. --set prover_actor.count=2")
        config = resolved_config(preset_name, overrides)
        title = f"# preset {preset_name}" + "".join(f" --set {shlex.quote(o)}" for o in overrides)
    print(render_settings(config, title + "\n# key = value  # help (default: the schema's value, where it differs)"))
    return EXIT_OK


# --- stop ---------------------------------------------------------------------------------------------------


def stop(exp: str, wait_s: float) -> int:
    path = check_folder(exp, must_exist=True)
    root = ExperimentRoot.open(path)
    root.request_stop("./launch.sh stop")
    print(f"stop requested for {path}: the jobs finish their current step, commit and exit", flush=True)
    deadline = time.time() + wait_s
    while time.time() < deadline:
        alive = [j["job"] for j in collect_jobs(root) if j["alive"]]
        launcher = launcher_alive(path)
        if not alive and not launcher:
            print("all jobs have ended", flush=True)
            return EXIT_OK
        time.sleep(2.0)
    if wait_s:
        print(
            f"still running after {wait_s:g} s: {', '.join(alive) or 'the launcher'} "
            f"(see python -m jobs.status {path})",
            flush=True,
        )
    return EXIT_OK


def collect_jobs(root: ExperimentRoot) -> list[dict[str, Any]]:
    from jobs.status import job_states

    return job_states(root, ExperimentConfig.from_dict(root.config), time.time())


def launcher_alive(path: str) -> bool:
    return holder_alive(read_lock(runs_folder(path) / LOCK_FILE))


if __name__ == "__main__":
    sys.exit(main())
