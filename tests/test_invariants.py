"""The admin's invariant checks on hand-built snapshot chains: messages in transit are not violations, drift is."""
from foxden.actors.admin import check_invariants, confirmed


def disp(running=None, channel=None, gones=0, submitted=0, ok=0, unanswered=0):
    return {"running": dict(running or {}), "channel": {b: list(n) for b, n in (channel or {}).items()},
            "gones": gones, "unanswered": unanswered,
            "totals": {"submitted": submitted, "ok": ok, "failed": 0, "timeout": 0, "rejected": 0}}


def child(bid, pid, job=None, assigns=0, ends=0):
    return {"id": bid, "pid": pid, "job_key": job, "assigns": assigns, "ends": ends}


def sup(*children, gones=0):
    return {"live": len(children), "children": list(children), "gones": gones}


def texts(result):
    violations, _ = result
    return [v.text for v in violations]


def test_a_quiet_den_holds():
    s = sup(child("b1", 101, "k1", assigns=3, ends=2), child("b2", 102, assigns=1, ends=1))
    d = disp({"b1": "k1"}, {"b1": (3, 2), "b2": (1, 1)}, submitted=3, ok=2, unanswered=1)
    assert check_invariants(d, s, d, {101, 102}) == ([], [])


def test_an_assign_that_overtook_the_query_is_in_transit_not_a_violation():
    """The long chaos run's "busy browsers [('b2', ...)] != in-flight jobs []": the dispatcher
    assigned after its first snapshot, and Thespian delivered that Assign before the query."""
    before = disp({}, {"b2": (0, 0)})
    s = sup(child("b2", 102, "k7", assigns=1))
    after = disp({"b2": "k7"}, {"b2": (1, 0)}, submitted=1, unanswered=1)
    violations, unsettled = check_invariants(before, s, after, {102})
    assert violations == [] and unsettled == ["b2"]


def test_an_assign_still_on_its_way_and_an_end_still_on_its_way_are_in_transit():
    d = disp({"b1": "k1"}, {"b1": (1, 0)}, submitted=1, unanswered=1)
    not_yet_assigned = sup(child("b1", 101))  # the supervisor has not seen the Assign
    finished = sup(child("b1", 101, assigns=1, ends=1))  # its JobFinished has not reached the dispatcher
    for s in (not_yet_assigned, finished):
        assert check_invariants(d, s, d, {101}) == ([], ["b1"])


def test_a_busy_browser_the_dispatcher_does_not_know_is_a_violation():
    s = sup(child("b1", 101, "k1", assigns=1))
    d = disp({}, {"b1": (1, 0)}, submitted=1, unanswered=1)  # numbers agree: nothing in transit
    assert texts(check_invariants(d, s, d, {101})) == [
        "busy browser b1: supervisor runs k1, dispatcher has no job in flight"]


def test_a_job_in_flight_on_an_idle_browser_is_a_violation():
    s = sup(child("b1", 101, assigns=1, ends=1))
    d = disp({"b1": "k1"}, {"b1": (1, 1)}, submitted=1, unanswered=1)
    assert texts(check_invariants(d, s, d, {101})) == [
        "busy browser b1: supervisor runs no job, dispatcher has k1 in flight"]


def test_a_job_on_a_browser_the_supervisor_no_longer_has():
    d = disp({"b9": "k1"}, {"b9": (1, 0)}, gones=4, submitted=1, unanswered=1)
    # Its BrowserGone may still be on its way: not judged.
    assert check_invariants(d, sup(gones=5), d, set()) == ([], ["b9"])
    # Every BrowserGone arrived, and the dispatcher still runs a job there: drift.
    assert texts(check_invariants(d, sup(gones=4), d, set())) == [
        "busy browser b9: supervisor runs no job, dispatcher has k1 in flight"]


def test_live_count_pid_by_pid():
    d = disp()
    # A child whose process died (its exit not processed yet): named by browser and pid.
    v, _ = check_invariants(d, sup(child("b1", 101), child("b2", 102)), d, {101})
    assert [x.key for x in v] == [("live", "missing", "b2", 102)]
    assert v[0].text.startswith("live count 2 != 1 browser actor processes")
    # A new child whose first message (with its pid) has not arrived: not a violation.
    assert check_invariants(d, sup(child("b1", 101), child("b2", None)), d, {101, 103}) == ([], [])
    # An actor process the supervisor does not know, with no pid-less child to explain it.
    v, _ = check_invariants(d, sup(child("b1", 101)), d, {101, 104})
    assert [x.key for x in v] == [("live", "unknown", 104)]
    # A pid-less child with no process at all.
    v, _ = check_invariants(d, sup(child("b1", 101), child("b2", None)), d, {101})
    assert [x.key for x in v] == [("live", "pidless", ("b2",))]


def test_totals_must_add_up():
    d = disp(submitted=5, ok=3, unanswered=1)
    assert texts(check_invariants(d, sup(), d, set())) == ["submitted 5 != answered 3 + unanswered 1"]


def test_only_the_same_discrepancy_twice_is_reported():
    """Two different browsers caught dying in two samples are two passing windows, not one violation."""
    d = disp()
    first, _ = check_invariants(d, sup(child("b1", 101), child("b2", 102)), d, {101})
    second, _ = check_invariants(d, sup(child("b2", 102), child("b3", 103)), d, {102})
    assert confirmed(frozenset(v.key for v in first), second) == []
    again, _ = check_invariants(d, sup(child("b1", 101), child("b2", 102)), d, {101})
    assert [v.key for v in confirmed(frozenset(v.key for v in first), again)] == [("live", "missing", "b2", 102)]
