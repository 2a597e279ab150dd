"""ModelPolicy: a briefly trained tiny model proposes valid tactics, constrained, batched, checkpointed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from core.errors import CheckpointError
from core.metamath import read_database
from core.metamath.embedded import embedded_database_path
from core.metamath.environment import BackwardEnv, EnvError, ForwardEnv, Tactic
from core.metamath.prooftree import tree_from_proof
from core.metamath.splits import split_theorems
from core.models.checkpoint import model_from_weights, model_weights, policy_meta, publish_version, save_policy_file
from core.models.decoding import Candidate
from core.models.examples import replay, tree_examples
from core.models.formats import Codec, build_vocabulary, free_variables
from core.models.training import new_model, train_examples
from core.models.vocab import Token
from core.search.model_policy import ModelPolicy, load_policy
from core.search.policy import BackwardQuery, ForwardQuery
from core.storage import CheckpointStore, ExperimentRoot, save_checkpoint_file
from tests.torch_threads import one_torch_thread

THEOREMS = 6  # the first train theorems of the embedded database: the tiny theorem set


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def db():
    return read_database(embedded_database_path())


@pytest.fixture(scope="module")
def theorems(db):
    return split_theorems(db)["train"][:THEOREMS]


@pytest.fixture(scope="module")
def vocab(db):
    return build_vocabulary(db)


@pytest.fixture(scope="module")
def trained(db, vocab, theorems):
    """A tiny model trained on the three formats of the tiny theorem set (a few seconds)."""
    model = new_model(vocab, "tiny", seed=0)
    codec = Codec.for_model(vocab, model.config)
    examples = [e for t in theorems for fmt in ("backward", "forward", "generator")
                for e in tree_examples(codec, db, t, tree_from_proof(db, t), fmt)]  # fmt: skip
    stats = train_examples(model, examples, steps=200, batch_size=len(examples), lr=1e-2, warmup_steps=20,
                           log_every=100, device="cpu")  # fmt: skip
    assert stats.losses[-1][1] < 0.1, stats.losses
    return model.eval()


def policy(model, vocab, **options) -> ModelPolicy:
    return ModelPolicy(model, vocab, formats=("backward", "forward", "generator"), device="cpu", **options)


def backward_steps(db, theorems):
    """(query, true tactic label, true substitution of the free variables) for every step of the proofs."""
    steps = []
    for theorem in theorems:
        env = BackwardEnv(db, theorem)
        hypotheses = {h.label for h in theorem.essential}
        for node in tree_from_proof(db, theorem).nodes():
            if node.label not in hypotheses:
                free = {v: node.substitution[v] for v in free_variables(db.assertion(node.label))}
                steps.append((BackwardQuery(env, node.statement), node.label, free))
    return steps


def test_a_trained_model_proposes_the_proof_steps_and_they_apply(db, vocab, theorems, trained):
    steps = backward_steps(db, theorems)
    answers = policy(trained, vocab).propose_backward([q for q, _, _ in steps], k=4)
    right = valid = 0
    for (query, label, free), proposals in zip(steps, answers):
        assert proposals and len(proposals) <= 4
        assert [p.logprob for p in proposals] == sorted((p.logprob for p in proposals), reverse=True)
        best = proposals[0]
        right += best.tactic.label == label and dict(best.tactic.substitution) == free
        valid += not isinstance(query.env.apply(query.goal, best.tactic), EnvError)
        assert best.text.split()[0] == best.tactic.label and best.logprob <= 0
    assert right >= 0.75 * len(steps) and valid >= 0.85 * len(steps)
    # The rejection twin: the same architecture untrained proposes (almost) nothing right.
    untrained = policy(new_model(vocab, "tiny", seed=1), vocab).propose_backward([q for q, _, _ in steps], k=4)
    lucky = sum(bool(a) and a[0].tactic.label == label for (_, label, _), a in zip(steps, untrained))
    assert lucky <= 0.3 * len(steps)


def test_forward_and_generator_proposals_follow_the_replay(db, vocab, theorems, trained):
    p = policy(trained, vocab)
    queries, labels = [], []
    for theorem in theorems[:3]:
        for goal in (theorem.statement, None):
            env = ForwardEnv(db, theorem, collect_disjoint=goal is None)
            for _, node, _ in replay(db, theorem, tree_from_proof(db, theorem)):
                queries.append(ForwardQuery(env, goal))
                labels.append(node.label)
                proposals = p.propose_forward([queries[-1]], k=2)[0]
                assert proposals and proposals[0].tactic.label == node.label
                assert not isinstance(env.apply(proposals[0].tactic), EnvError)  # the env grows as in the replay
            if goal is None:  # the full graph: the generator stops
                stop = p.propose_forward([ForwardQuery(env, None)], k=2)[0]
                assert stop[0].is_stop and stop[0].text == "<STOP>"
                for temperature in (None, 1.0):  # before min_steps the STOP token is masked: never proposed
                    held = p.propose_forward([ForwardQuery(env, None, may_stop=False)], k=4, temperature=temperature)
                    assert held[0] and not any(q.is_stop for q in held[0])
            else:  # a prover never proposes STOP
                assert all(not q.is_stop for q in p.propose_forward([ForwardQuery(env, goal)], k=4)[0])
    sampled = p.propose_forward(queries, k=5, temperature=1.0)
    for proposals in sampled:  # a sample may decode to nothing valid: fewer than k, never duplicates
        assert len(proposals) <= 5 and len({q.text for q in proposals}) == len(proposals)
    assert sum(bool(proposals) for proposals in sampled) >= 0.5 * len(sampled)


def test_the_first_token_is_constrained_to_the_context(db, vocab, theorems, trained):
    theorem = theorems[-1]
    allowed = BackwardEnv(db, theorem).allowed_labels()
    assert theorem.label not in allowed and len(allowed) < len(vocab.label_ids)
    p = policy(trained, vocab)
    free = p.propose_backward([BackwardQuery(BackwardEnv(db, theorem), theorem.statement)], k=8)[0]
    assert {q.tactic.label for q in free} <= set(allowed)
    favourite = free[0].tactic.label
    forbidden = BackwardEnv(db, theorem, forbidden={favourite})
    constrained = p.propose_backward([BackwardQuery(forbidden, theorem.statement)], k=8)[0]
    assert constrained and {q.tactic.label for q in constrained} <= set(forbidden.allowed_labels())
    assert favourite not in {q.tactic.label for q in constrained}
    later = db.assertions[-1]  # every label before it is allowed: a wider mask, cached separately
    wide_env = BackwardEnv(db, later)
    wide = p.propose_backward([BackwardQuery(wide_env, theorem.statement)], k=8)[0]
    assert {q.tactic.label for q in wide} <= set(wide_env.allowed_labels())
    narrow_mask = p._first_tokens(BackwardEnv(db, theorem), stop=False)
    wide_mask = p._first_tokens(wide_env, stop=False)
    assert narrow_mask is not None and wide_mask is not None
    assert int(wide_mask.sum()) > int(narrow_mask.sum())  # more labels allowed, from a mask of its own
    assert len(p._masks) == 3


def test_backward_first_tokens_are_the_labels_that_unify_with_the_goal(db, vocab, theorems, trained):
    from core.search.model_policy import ConclusionIndex

    env = BackwardEnv(db, db.assertions[-1])
    index = ConclusionIndex(db, env.grammar, vocab)
    goals = {q.goal for q, _, _ in backward_steps(db, theorems)} | {("|-", "ph"), ("|-", "-.", "ph")}
    for goal in goals:
        mask = index.unifiable_mask(env, goal)
        expected = {label for label in env.allowed_labels()
                    if env.unify(db.assertion(label), db.assertion(label).statement, goal) is not None}  # fmt: skip
        assert {vocab.token(i).text for i in mask.nonzero().flatten().tolist()} == expected
        assert expected and len(expected) < len(env.allowed_labels())
    # Every proposal then unifies; without the narrowing the same model may propose labels that do not.
    queries = [BackwardQuery(BackwardEnv(db, db.assertions[-1]), goal) for goal in sorted(goals)]
    for proposals, query in zip(policy(trained, vocab).propose_backward(queries, k=8), queries):
        assert proposals
        for proposal in proposals:
            result = query.env.apply(query.goal, proposal.tactic)
            assert not (isinstance(result, EnvError) and result.kind.name == "NO_UNIFICATION")
    wide = policy(trained, vocab, unifiable_only=False).propose_backward(queries, k=8)
    assert any(isinstance(q.env.apply(q.goal, p.tactic), EnvError) for q, ps in zip(queries, wide) for p in ps)


def test_one_batched_call_equals_calls_one_by_one(db, vocab, theorems, trained):
    queries = [q for q, _, _ in backward_steps(db, theorems)]
    p = policy(trained, vocab)
    batched = p.propose_backward(queries, k=3)
    assert p.model_calls == 1
    for query, together in zip(queries, batched):
        alone = p.propose_backward([query], k=3)[0]
        assert [q.tactic for q in alone] == [q.tactic for q in together]
        assert [q.logprob for q in alone] == pytest.approx([q.logprob for q in together], abs=1e-4)
    assert p.model_calls == 1 + len(queries)
    chunked = policy(trained, vocab, max_batch=4)
    assert [[q.tactic for q in a] for a in chunked.propose_backward(queries, k=3)] == [
        [q.tactic for q in a] for a in batched]  # fmt: skip
    assert chunked.model_calls == -(-len(queries) // 4)


def test_unusable_queries_get_no_proposals_and_are_counted(db, vocab, trained, theorems):
    p = policy(trained, vocab)
    theorem = theorems[0]
    long_goal = ("|-",) + ("(", "ph", "->") * 100 + ("ph",) + (")",) * 100
    first = db.assertions[0]  # nothing precedes the first assertion: no label is allowed
    queries = [BackwardQuery(BackwardEnv(db, theorem), long_goal),
               BackwardQuery(BackwardEnv(db, first), theorem.statement),
               BackwardQuery(BackwardEnv(db, theorem), theorem.statement)]  # fmt: skip
    answers = p.propose_backward(queries, k=2)
    assert answers[0] == [] and answers[1] == [] and answers[2]
    assert p.counters["source_too_long"] == 1 and p.counters["skipped_query"] == 1
    assert p.counters["no_allowed_label"] == 1


def test_a_checkpoint_round_trip_gives_identical_proposals(tmp_path, db, vocab, theorems, trained):
    queries = [q for q, _, _ in backward_steps(db, theorems)][:6]
    expected = policy(trained, vocab).propose_backward(queries, k=3)
    meta = policy_meta(trained, vocab, "prover", {"step": 200}, formats=("backward", "forward", "generator"))
    assert meta["kind"] == "prover" and meta["formats"] == ["backward", "forward", "generator"] and meta["step"] == 200
    assert meta["model_config"]["vocab_size"] == len(vocab) and meta["vocabulary"] == vocab.to_dict()
    path = str(tmp_path / "prover.safetensors")
    save_policy_file(path, trained, vocab, "prover", {"step": 200}, formats=("backward", "forward", "generator"))
    loaded = load_policy(path, device="cpu")
    assert loaded.vocab == vocab and loaded.formats == ("backward", "forward", "generator")
    assert loaded.propose_backward(queries, k=3) == expected
    # From an experiment root: the latest version of the prover checkpoint.
    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), {"name": "test"})
    store = CheckpointStore(root, "prover")
    publish_version(store, new_model(vocab, "tiny", seed=5), vocab, "prover")
    publish_version(store, trained, vocab, "prover", {"step": 200}, formats=("backward", "forward", "generator"))
    assert load_policy(str(tmp_path / "exp"), device="cpu").propose_backward(queries, k=3) == expected
    assert load_policy(str(tmp_path / "exp"), device="cpu", version=0).propose_backward(queries, k=3) != expected


def test_a_checkpoint_that_is_not_a_policy_is_refused(tmp_path, vocab, trained):
    path = str(tmp_path / "bare.safetensors")
    save_checkpoint_file(path, trained.state_dict(), {"step": 1})
    with pytest.raises(CheckpointError, match="not a policy checkpoint"):
        load_policy(path)
    meta = policy_meta(trained, vocab, "prover")
    bad = dict(meta, model_config=dict(meta["model_config"], d_model=64, d_ff=128))
    with pytest.raises(CheckpointError, match="do not fit"):
        model_from_weights(model_weights(trained), bad, device="cpu")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(str(tmp_path / "missing.safetensors"))


def test_generator_queries_keep_a_malformed_substitution_as_a_partial_tactic(db, vocab, theorems, monkeypatch):
    """A generator output with a good label and a broken substitution is kept (label only) for completion;
    the same output for a forward prover query (a goal given) is dropped."""
    p = policy(new_model(vocab, "tiny", seed=0), vocab)
    broken = vocab.encode([Token("label", "ax-mp"), Token("special", "<SUBST>"), Token("symbol", "ph")])
    monkeypatch.setattr(p, "_decode", lambda sources, masks, k, temperature: [[Candidate(broken, -1.0)]] * len(sources))
    theorem = theorems[0]
    generator_query = ForwardQuery(ForwardEnv(db, theorem, collect_disjoint=True), None)
    prover_query = ForwardQuery(ForwardEnv(db, theorem), theorem.statement)
    generated, proved = p.propose_forward([generator_query, prover_query], k=1)
    assert [q.tactic for q in generated] == [Tactic("ax-mp", {})] and proved == []
    assert p.counters["partial_substitution"] == 1 and p.counters["bad_subst_structure"] == 1


def test_inference_only_queries_allow_only_assertions_with_essential_hypotheses(db, vocab, theorems):
    p = policy(new_model(vocab, "tiny", seed=0), vocab)
    env = ForwardEnv(db, theorems[-1], collect_disjoint=True)

    def allowed(inference_only: bool) -> set[str]:
        mask = p._first_tokens(env, stop=False, inference_only=inference_only)
        assert mask is not None
        return {vocab.token(i).text for i in torch.nonzero(mask).flatten().tolist()}

    everything, inference = allowed(False), allowed(True)
    assert inference and inference < everything
    assert all(db.assertion(label).essential for label in inference)
    assert {label for label in everything if db.assertion(label).essential} == inference
