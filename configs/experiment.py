"""The configuration of an experiment: one frozen dataclass per role, and the experiment that holds them.

An :class:`ExperimentConfig` is frozen into the experiment root when the experiment is created (as
JSON, through the storage layer); every job reads it from there, so all roles of an experiment agree.
Each role's section holds that role's knobs, including how many jobs run it (``count``; 0 disables it).

Placement settings (:data:`PLACEMENT_SECTIONS`: ``slurm.*``) say where and with which resources the jobs
run, not what they compute: a resumed experiment may change them (the launcher records the change in
the run's record); every other setting stays as frozen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from configs.schema import Config, option
from core.adversarial.rewards import DIFFICULTIES
from core.adversarial.settings import GenerationSettings
from core.adversarial.topology import ROLES, SETUPS, check_role_counts, generator_learns_from_results
from core.errors import ConfigError
from core.search.settings import SearchSettings

MODEL_SIZES = ("tiny", "small", "base")
SLURM_NAME = r"[A-Za-z0-9_.,:+-]{0,128}"  # partition, account, qos: written into sbatch scripts verbatim
PRECISIONS = ("fp32", "bf16")  # as core.models.devices reads them (not imported: configs load without torch)
DEVICE_SETTING = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def check_device_setting(text: str, field: str) -> None:
    """A :class:`ConfigError` naming ``field`` unless ``text`` reads ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    (its syntax only: whether the device exists is checked where the job runs, by core.models.devices)."""
    if not DEVICE_SETTING.fullmatch(text):
        raise ConfigError(f"{field} {text!r}: use auto (cuda when available, else cpu), cpu, cuda or cuda:N")


def device_option() -> Any:
    return option(
        "auto",
        help="where the role's models run: auto (cuda when available, else cpu), cpu, cuda "
        "(the GPU of the job's local rank) or cuda:N",
    )


def precision_option(what: str) -> Any:
    return option(
        "fp32",
        choices=PRECISIONS,
        help=f"fp32, or bf16: bfloat16 autocast of {what} on CUDA"
        + (
            ", bfloat16 weights on a CPU with native bfloat16 (elsewhere fp32, with a warning)"
            if what == "decoding"
            else " (ignored, with a warning, on a CPU)"
        ),
    )


@dataclass(frozen=True)
class DatabaseConfig(Config):
    path: str = option(
        "default",
        help="the .mm file; 'default' = $ADVPROVER_DATABASE, else set.mm's "
        "propositional part when installed, else the embedded database; "
        "'embedded' = the embedded Hilbert database",
    )
    stop_at: str = option("", help="read the database only up to this label ('' = all of it)")
    splits: str = option("80/10/10", help="train/valid/test ratios of the theorem split")
    split_salt: str = option("", help="salt of the split hash (changes which theorems go where)")
    forbidden: tuple[str, ...] = option((), help="labels no prover or generator may use")

    def validate(self) -> None:
        from core.metamath.splits import SplitRatios

        SplitRatios.parse(self.splits)
        if not self.path:
            raise ConfigError("database.path must not be empty")


@dataclass(frozen=True)
class ModelSpec(Config):
    size: str = option("small", choices=MODEL_SIZES, help="named model size")
    max_source_tokens: int = option(384, min=16, help="longest input sequence; longer inputs are skipped and counted")
    max_target_tokens: int = option(96, min=8, help="longest output sequence")


@dataclass(frozen=True)
class GeneratorActorConfig(GenerationSettings, Config):
    """The generation settings (:class:`GenerationSettings`, the rollouts and the theorem chosen from each) and
    the generator actor jobs' own knobs."""

    count: int = option(1, min=0, help="number of generator actor jobs")
    rollouts_per_batch: int = option(8, min=1, help="rollouts run together, their model calls batched")
    mix: str = option("1,generator", help="sources of goals: 'weight,generator;weight,dataset'")
    shard_records: int = option(32, min=1, help="records per published shard")
    shard_seconds: float = option(20.0, min=0.1, help="publish a shard at least this often")
    reload_seconds: float = option(10.0, min=0.0, help="how often to look for a newer generator checkpoint")
    max_lag_shards: int = option(16, min=1, help="pause while a consumer is this many shards behind a stream")
    device: str = device_option()
    precision: str = precision_option("decoding")
    difficulty_conditioning: bool = option(
        False,
        help="Minimo's difficulty conditioning: the generator trainer relabels each rollout with the difficulty "
        "the prover measured (<EASY>/<MEDIUM>/<HARD>) and the actors ask for target_difficulty",
    )
    target_difficulty: str = option(
        "HARD",
        choices=DIFFICULTIES,
        help="the level the actors ask for when difficulty_conditioning is on (HARD: where the prover fails)",
    )

    def validate(self) -> None:
        super().validate()
        parse_mix(self.mix)
        check_device_setting(self.device, "generator_actor.device")


def parse_mix(text: str) -> dict[str, float]:
    """``"3,generator;1,dataset"`` -> ``{"generator": 0.75, "dataset": 0.25}``."""
    from core.adversarial.rewards import weighted_parts

    form = "weight,generator or weight,dataset"
    weights: dict[str, float] = {}
    for weight, source in weighted_parts(text, "generator_actor.mix", form):
        if source not in ("generator", "dataset"):
            raise ConfigError(f"generator_actor.mix {text!r}: each part must read {form}")
        if weight < 0:
            raise ConfigError(f"generator_actor.mix {text!r}: weights must be >= 0")
        weights[source] = weights.get(source, 0.0) + weight
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError(f"generator_actor.mix {text!r}: some weight must be positive")
    return {k: v / total for k, v in weights.items()}


@dataclass(frozen=True)
class ProverActorConfig(Config):
    count: int = option(1, min=0, help="number of prover actor jobs")
    search: SearchSettings = option(SearchSettings(), help="the search each goal gets")
    shard_records: int = option(32, min=1, help="records per published shard")
    shard_seconds: float = option(20.0, min=0.1, help="publish a shard at least this often")
    reload_seconds: float = option(10.0, min=0.0, help="how often to look for a newer prover checkpoint")
    max_solved_subgoals: int = option(
        4,
        min=0,
        help="a failed backward/HTPS search reports up to N goals it proved on the way, for the prover trainer "
        "when it learns from its own proofs (prover-only, learn_from_own_proofs; 0 = off)",
    )
    device: str = device_option()
    precision: str = precision_option("decoding")

    def validate(self) -> None:
        check_device_setting(self.device, "prover_actor.device")


@dataclass(frozen=True)
class RewardConfig(Config):
    kind: str = option(
        "hard",
        choices=("hard", "band", "heuristic"),
        help="hard: 1 if the prover failed; band: 1 if the success rate of `attempts` tries is "
        "in (0, tau]; heuristic: the generator's heuristic score alone",
    )
    attempts: int = option(1, min=1, help="prover attempts per generated theorem (band reward)")
    tau: float = option(0.5, min=0.0, max=1.0, help="upper bound of the rewarded success band")
    heuristic_weight: float = option(0.0, min=0.0, help="shaping: add weight * normalized heuristic score")
    duplicate_penalty: float = option(0.0, min=0.0, help="subtracted from the reward of a duplicate theorem")

    def validate(self) -> None:
        if self.kind == "band" and self.attempts < 2:
            raise ConfigError("rewards.attempts must be >= 2 when rewards.kind is 'band'")


@dataclass(frozen=True)
class RoutingConfig(Config):
    generator_send_only_failed: bool = option(False, help="the generator trainer sees only theorems the prover failed")
    prover_send_only_failed: bool = option(True, help="the prover trainer learns only from theorems it failed")


@dataclass(frozen=True)
class TrainerConfig(Config):
    count: int = option(1, min=0, help="number of trainer jobs (data-parallel above 1)")
    batch_size: int = option(32, min=1, help="examples per optimizer step")
    lr: float = option(3e-4, min=0.0, help="peak learning rate")
    warmup_steps: int = option(100, min=0, help="learning-rate warm-up")
    replay_min: int = option(32, min=0, help="records in the replay buffer before training on generated data")
    replay_max: int = option(20000, min=1, help="replay buffer size (FIFO eviction)")
    replay_sampling: str = option("uniform", choices=("uniform", "reward"), help="how records are drawn")
    supervised_weight: float = option(
        0.5, min=0.0, max=1.0, help="fraction of each batch drawn from the database's train split"
    )
    checkpoint_every_steps: int = option(200, min=1, help="publish a checkpoint every N steps")
    checkpoint_every_minutes: float = option(5.0, min=0.0, help="... or every N minutes, whichever comes first")
    bootstrap_steps: int = option(300, min=0, help="supervised steps before version 0 (without init_checkpoint)")
    init_checkpoint: str = option("", help="start from this checkpoint file (version 0) instead of bootstrapping")
    keep_checkpoints: int = option(5, min=1, help="checkpoint versions kept (older ones pruned)")
    max_steps: int = option(0, min=0, help="stop after this many steps (0 = no limit)")
    device: str = device_option()
    precision: str = precision_option("training forward passes")

    def validate(self) -> None:
        check_device_setting(self.device, f"{type(self).__name__}.device")
        if self.replay_min > self.replay_max:
            raise ConfigError(
                f"{type(self).__name__}.replay_min ({self.replay_min}) must be <= replay_max ({self.replay_max})"
            )


@dataclass(frozen=True)
class ProverTrainerConfig(TrainerConfig):
    examples: str = option(
        "auto",
        choices=("auto", "backward", "forward", "both"),
        help="which prover formats to train; auto follows prover_actor.search.prover",
    )
    hindsight_max_nodes: int = option(
        4,
        min=0,
        help="hindsight relabelling: up to N intermediate statements of each routed generated rollout become "
        "theorems of their own, kernel-checked, their examples in the record's replay item (0 = off)",
    )
    learn_from_own_proofs: bool = option(
        False,
        help="also learn from the proofs the prover actors found (expert iteration; setup prover-only always does)",
    )
    critic: bool = option(
        True,
        help="train a goal critic from the search outcomes in the result records (the prover actors then "
        "report up to critic_max_examples targets per search) and publish it with the prover checkpoints",
    )
    critic_max_examples: int = option(
        64, min=1, help="critic targets per search a prover actor reports in its result record (root first)"
    )
    critic_lr: float = option(1e-3, min=0.0, help="the critic's Adam learning rate")


@dataclass(frozen=True)
class GeneratorTrainerConfig(TrainerConfig):
    baseline_decay: float = option(0.99, min=0.0, max=1.0, help="moving-average baseline of REINFORCE")
    entropy_weight: float = option(0.0, min=0.0, help="entropy bonus (0 = none)")


@dataclass(frozen=True)
class EvaluatorConfig(Config):
    count: int = option(1, min=0, max=1, help="1 runs the evaluator, 0 does not")
    benchmark: str = option(
        "test", help="'test' or 'valid' split of the database, or a .mm file whose ? theorems are the benchmark"
    )
    search: SearchSettings = option(SearchSettings(expansions=32, timeout_s=10.0), help="fixed evaluation budget")
    max_theorems: int = option(0, min=0, help="evaluate at most this many theorems (0 = all)")
    every_versions: int = option(1, min=1, help="evaluate every N-th prover version (the latest always)")
    device: str = device_option()
    precision: str = precision_option("decoding")

    def validate(self) -> None:
        check_device_setting(self.device, "evaluator.device")


@dataclass(frozen=True)
class RetentionConfig(Config):
    keep_all: bool = option(False, help="never prune a stream (disk grows with the run)")
    keep_shards: int = option(64, min=1, help="newest shards of each stream never pruned, whatever its consumers")
    prune_every_s: float = option(300.0, min=1.0, help="how often a stream's producer looks for shards to prune")
    grace_s: float = option(
        600.0, min=0.0, help="a shard is pruned only once every consumer has been committed past it for this long"
    )


@dataclass(frozen=True)
class MetricsConfig(Config):
    enabled: bool = option(True, help="write live TensorBoard scalars (loss, lr, rewards, success rates...)")
    folder: str = option(
        "",
        help="local folder of the TensorBoard runs ('' = EXP/tensorboard; on a remote store "
        "each job stages its run locally and uploads it there)",
    )
    every_steps: int = option(10, min=1, help="a trainer writes its scalars every N optimizer steps")
    every_seconds: float = option(30.0, min=1.0, help="an actor writes its scalars at most every N seconds")

    def validate(self) -> None:
        if "://" in self.folder and not self.folder.startswith("file://"):
            raise ConfigError(
                f"metrics.folder {self.folder!r} must be a local folder (TensorBoard event files "
                f"are written locally); leave it empty to use EXP/tensorboard, on any store"
            )


@dataclass(frozen=True)
class SlurmResources(Config):
    partition: str = option("", pattern=SLURM_NAME, help="SLURM partition ('' = the cluster's default)")
    gpus: int = option(0, min=0, help="GPUs per job (per task of a trainer group)")
    cpus: int = option(2, min=1, help="CPUs per job; also the job's torch threads")
    mem_gb: int = option(8, min=1, help="memory per job (per task of a trainer group), GB")
    time_minutes: int = option(
        60, min=1, help="SLURM time limit of each job, minutes (submitit requeues a job that reaches it)"
    )


@dataclass(frozen=True)
class SlurmConfig(Config):
    generator_actor: SlurmResources = option(SlurmResources(), help="resources of generator actors")
    prover_actor: SlurmResources = option(SlurmResources(), help="resources of prover actors")
    generator_trainer: SlurmResources = option(SlurmResources(), help="resources of the generator trainer(s)")
    prover_trainer: SlurmResources = option(SlurmResources(), help="resources of the prover trainer(s)")
    evaluator: SlurmResources = option(SlurmResources(), help="resources of the evaluator")
    account: str = option("", pattern=SLURM_NAME, help="SLURM account to charge ('' = your default)")
    qos: str = option("", pattern=SLURM_NAME, help="SLURM quality of service ('' = the default)")


@dataclass(frozen=True)
class ExperimentConfig(Config):
    preset: str = option("custom", help="the preset this experiment started from")
    setup: str = option("adversarial", choices=SETUPS, help="which roles run and how they are wired")
    seed: int = option(
        0,
        min=0,
        help="seed of the experiment (each job derives its own from it, its role, rank and "
        "restart counter: runs are reproducible)",
    )
    database: DatabaseConfig = option(DatabaseConfig(), help="the Metamath database theorems come from")
    prover_model: ModelSpec = option(ModelSpec(), help="the prover's model")
    generator_model: ModelSpec = option(ModelSpec(), help="the generator's model")
    generator_actor: GeneratorActorConfig = option(GeneratorActorConfig(), help="jobs that generate theorems")
    prover_actor: ProverActorConfig = option(ProverActorConfig(), help="jobs that try to prove the generated theorems")
    generator_trainer: GeneratorTrainerConfig = option(
        GeneratorTrainerConfig(), help="trains the generator (REINFORCE on the rewards)"
    )
    prover_trainer: ProverTrainerConfig = option(
        ProverTrainerConfig(), help="trains the prover on its attempts and the database"
    )
    evaluator: EvaluatorConfig = option(EvaluatorConfig(), help="evaluates each prover version on a fixed benchmark")
    rewards: RewardConfig = option(RewardConfig(), help="the generator's reward")
    routing: RoutingConfig = option(RoutingConfig(), help="which records each trainer learns from")
    retention: RetentionConfig = option(
        RetentionConfig(),
        help="when the producer of a stream deletes the shards every consumer is done with (docs/PROTOCOL.md)",
    )
    metrics: MetricsConfig = option(MetricsConfig(), help="live TensorBoard scalars of every job")
    slurm: SlurmConfig = option(
        SlurmConfig(), help="where the jobs run on SLURM (may change on resume; see docs/LAUNCH.md)"
    )

    @classmethod
    def _section(cls) -> str:
        return ""

    def validate(self) -> None:
        check_role_counts(self.setup, {role: self.role_count(role) for role in ROLES})  # the wiring table's rules
        if self.rewards.kind == "band" and self.prover_actor.search.prover != "forward-sampling":
            raise ConfigError(
                f"rewards.kind='band' needs a sampling prover (its reward varies only if the prover's "
                f"attempts can differ): set prover_actor.search.prover=forward-sampling, not "
                f"{self.prover_actor.search.prover!r}"
            )
        self._check_difficulty_conditioning()

    def _check_difficulty_conditioning(self) -> None:
        """Difficulty labels come from the prover's outcomes, routed to a generator trainer, successes included."""
        if not self.generator_actor.difficulty_conditioning:
            return
        if not generator_learns_from_results(self.setup):
            learners = ", ".join(s for s in SETUPS if generator_learns_from_results(s))
            raise ConfigError(
                f"generator_actor.difficulty_conditioning needs a generator trainer that learns from the prover's "
                f"results (setup {learners}), not setup {self.setup!r}"
            )
        if self.routing.generator_send_only_failed:
            raise ConfigError(
                "generator_actor.difficulty_conditioning with routing.generator_send_only_failed=true would label "
                "every trained rollout HARD: set routing.generator_send_only_failed=false"
            )

    def role_count(self, role: str) -> int:
        return getattr(self, role).count


# Sections that only place jobs (partition, GPUs, CPUs, memory, time limit, account, QOS): they may change
# when an experiment is resumed. Nothing a job computes reads them (a local run ignores them all).
PLACEMENT_SECTIONS = ("slurm",)


def placement_changes(frozen: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for each placement setting that differs between two configuration dicts."""
    changes: list[str] = []
    for section in PLACEMENT_SECTIONS:
        _differences(frozen.get(section), wanted.get(section), section, changes)
    return changes


def with_placement_of(wanted: Mapping[str, Any], frozen: Mapping[str, Any]) -> dict[str, Any]:
    """``wanted`` with its placement sections taken from ``frozen`` (what must then equal the frozen dict)."""
    merged = dict(wanted)
    for section in PLACEMENT_SECTIONS:
        if section in frozen:
            merged[section] = frozen[section]
    return merged


def without_new_defaults(
    wanted: Mapping[str, Any], frozen: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``wanted`` without the settings an older experiment's ``frozen`` dict lacks and that are at their
    schema default: settings added since the experiment was created. Jobs read a missing key as its default
    (:meth:`Config.from_dict`), so such an experiment resumes as it ran; a new setting given another value
    stays, and the comparison with the frozen configuration then names it."""
    defaults = ExperimentConfig().to_dict() if defaults is None else defaults
    kept: dict[str, Any] = {}
    for key, value in wanted.items():
        if key not in frozen:
            if key in defaults and value == defaults[key]:
                continue
            kept[key] = value
        elif all(isinstance(v, Mapping) for v in (value, frozen[key], defaults.get(key))):
            kept[key] = without_new_defaults(value, frozen[key], defaults[key])
        else:
            kept[key] = value
    return kept


def _differences(old: Any, new: Any, key: str, out: list[str]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for name in sorted(set(old) | set(new)):
            _differences(old.get(name), new.get(name), f"{key}.{name}", out)
    elif old != new:
        out.append(f"{key}: {old!r} -> {new!r}")
