"""`Policy.on_prediction`: a predicted length that arrives after the request did (inline)."""

from engine.policy import MLFQPolicy, Policy, PolicyConfig, SeqState


def _trusting(policy):
    policy.trust.trusted = True  # as after predictions were seen to rank lengths
    return policy


def _mlfq():
    return _trusting(MLFQPolicy(PolicyConfig(name="mlfq")))


def test_the_base_policy_keeps_the_new_prediction():
    policy, seq = Policy(), SeqState("a", 0.0, 10, predicted_len=50.0)
    policy.on_arrival(seq, 0.0)
    policy.on_prediction(seq, 900.0, 1.0)
    assert seq.predicted_len == 900.0


def test_mlfq_moves_a_request_to_the_level_of_its_new_size():
    policy = _mlfq()
    short, long_ = SeqState("s", 0.0, 10, predicted_len=4.0), SeqState("l", 0.0, 10, predicted_len=4.0)
    for seq in (short, long_):
        policy.on_arrival(seq, 0.0)
    policy.on_prediction(long_, 5000.0, 1.0)
    reference = SeqState("r", 0.0, 10, predicted_len=5000.0)
    policy.on_arrival(reference, 0.0)
    assert short.level == 0 and long_.level == long_.entry_level == reference.level > 0
    assert long_.quantum_left == reference.quantum_left


def test_mlfq_counts_the_tokens_already_generated():
    policy = _mlfq()
    seq, fresh = SeqState("a", 0.0, 10), SeqState("b", 0.0, 10, predicted_len=3.0)
    policy.on_arrival(seq, 0.0)
    policy.on_arrival(fresh, 0.0)
    policy.on_tokens(fresh, 40, 1.0)  # entered with the prediction, then ran 40 tokens
    policy.on_tokens(seq, 40, 1.0)
    policy.on_prediction(seq, 3.0, 2.0)  # told the same prediction only now
    assert (seq.level, seq.quantum_left) == (fresh.level, fresh.quantum_left)


def test_mlfq_leaves_an_aged_request_where_aging_put_it():
    policy = _mlfq()
    seq = SeqState("a", 0.0, 10)
    policy.on_arrival(seq, 0.0)
    seq.aged, seq.level = True, 0
    policy.on_prediction(seq, 10_000.0, 1.0)
    assert seq.level == 0 and seq.predicted_len == 10_000.0
