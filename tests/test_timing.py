"""roiops._timing.median_seconds: the alternating timer of `roiops bench` and benchmarks/."""
import roiops._timing as timing
from roiops.cli import bench


def test_every_contender_gets_warmup_settle_and_timed_calls_in_shuffled_turns():
    calls = []
    contenders = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    medians = timing.median_seconds(contenders, repeats=4, warmup=2, settle=0.0)
    assert set(medians) == {"a", "b", "c"}
    assert all(seconds >= 0 for seconds in medians.values())
    warm, turns = calls[:6], calls[6:]
    assert warm == list("abc") * 2
    # settle=0: one untimed call then the timed one, so each turn is two calls of one contender.
    assert len(turns) == 2 * 3 * 4
    pairs = [turns[i:i + 2] for i in range(0, len(turns), 2)]
    assert all(first == second for first, second in pairs)
    rounds = [[pair[0] for pair in pairs[i:i + 3]] for i in range(0, len(pairs), 3)]
    assert all(sorted(order) == list("abc") for order in rounds)
    assert len({tuple(order) for order in rounds}) > 1  # the order is shuffled between rounds


def test_the_order_is_seeded():
    def order():
        calls = []
        timing.median_seconds({n: (lambda n=n: calls.append(n)) for n in "abcd"}, repeats=5,
                              warmup=0, settle=0.0)
        return calls
    assert order() == order()


def test_roiops_bench_uses_the_shared_timer():
    assert bench.median_seconds is timing.median_seconds
