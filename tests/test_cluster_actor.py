"""The leader's cluster actor and the dispatcher's node_lost, their handlers called directly with sends recorded.

The loopback and netns tests drive the real thing; here each message order
that matters (a lost node's late result, a drain with a job in flight) is
made to happen on demand."""
from __future__ import annotations

import time

from thespian.actors import ActorExitRequest

from foxden.cluster.leader import ClusterActor
from foxden.config import default_config
from foxden.protocols import wire
from foxden.protocols.messages import (
    Assign, AssignRefused, BrowserGone, DrainNode, DrainNodeReply, FromNode, InitCluster, JobFinished, JobResult, LinkTo,
    NodeFence, NodeHeartbeat, NodeJoin, NodeRelease, NodeWelcome, SubmitJob, ToNode, WorkRequest,
)
from tests.test_result_route import OK, Dispatcher

SPEC = wire.JobRequest(url="http://x.test/", id="j0")


class Cluster(ClusterActor):
    """The real cluster actor, with its sends recorded and its clock in our hands."""

    myAddress = "cluster"

    def __init__(self):
        super().__init__()
        self.sent: list = []
        self.links, self.unlinked = {}, []
        config = default_config().replace(cluster={"node": "lead", "role": "leader"})
        self.receiveMsg_InitCluster(InitCluster(config, "dispatcher", "local-sup", "h:1"), "daemon")
        self.sent.clear()

    links: dict

    def send(self, to, msg) -> None:
        if isinstance(msg, LinkTo):
            self.links[to] = msg.node
        elif to in self.links:  # through a node's link (foxden.cluster.link): recorded as sent to the node
            if not isinstance(msg, ActorExitRequest):
                self.sent.append((self.links[to], msg))
            else:
                self.unlinked.append(self.links[to])
        else:
            self.sent.append((to, msg))

    def createActor(self, cls, **kwargs):
        assert cls == "foxden.cluster.link.NodeLink"  # the only actor it makes here
        return f"link{len(self.links)}"

    def wakeupAfter(self, *args, **kwargs) -> None:
        pass

    def notifyOnSystemRegistrationChanges(self, *args) -> None:
        pass

    def to(self, who: str) -> list:
        return [m for t, m in self.sent if t == who]

    def join(self, node: str = "m1", inc: str = "m1-a-1", browsers=("i1.b1",)) -> None:
        self.receiveMsg_NodeJoin(NodeJoin(node, inc, "h:2"), f"{node}-actor")
        for b in browsers:
            self.receiveMsg_FromNode(FromNode(node, inc, WorkRequest(b, "chromium")), f"{node}-actor")


def assign(c: Cluster, browser: str, key: str = "k1") -> None:
    from foxden.protocols.messages import JobSpec

    c.receiveMsg_Assign(Assign(browser, JobSpec(key=key, id="j0", url="http://x.test/", answer_to="dispatcher"), 30.0),
                        "dispatcher")


def test_a_node_joins_and_its_browsers_are_offered_under_their_cluster_names():
    c = Cluster()
    c.join()
    assert NodeWelcome("m1-a-1") in c.to("m1-actor")
    assert [m.browser for m in c.to("dispatcher") if isinstance(m, WorkRequest)] == ["m1/i1.b1"]
    assign(c, "m1/i1.b1")
    (sent,) = [m for m in c.to("m1-actor") if isinstance(m, ToNode)]
    assert sent.incarnation == "m1-a-1" and sent.message.browser == "i1.b1"
    assert sent.message.job.answer_to is None  # the node actor answers for its browsers


def test_a_lost_node_has_its_jobs_settled_once_and_nothing_sent_to_it_after():
    c = Cluster()
    c.join(browsers=("i1.b1", "i1.b2"))
    assign(c, "m1/i1.b1")
    c.nodes["m1"].last_seen = time.monotonic() - 10  # silent for longer than dead_after_s
    c.sent.clear()
    c.receiveMsg_WakeupMessage(type("W", (), {"payload": "cluster-tick"})(), "cluster")
    gone = [m for m in c.to("dispatcher") if isinstance(m, BrowserGone)]
    assert {(g.browser, g.job_key, g.reason) for g in gone} == {("m1/i1.b1", "k1", "node_lost"),
                                                               ("m1/i1.b2", None, "node_lost")}
    assert c.nodes["m1"].state.value == "lost" and c.gones == 2
    assert c.unlinked == ["m1-actor"]  # its link ended with it: whatever it held for the node is dropped
    c.sent.clear()
    # its late result and heartbeat are dropped (and it is told to fence), never forwarded
    c.receiveMsg_FromNode(FromNode("m1", "m1-a-1", JobResult("i1.b1", "k1", OK)), "m1-actor")
    c.receiveMsg_NodeHeartbeat(NodeHeartbeat("m1", "m1-a-1", {}), "m1-actor")
    assert c.to("dispatcher") == [] and all(isinstance(m, NodeFence) for m in c.to("m1-actor"))
    assign(c, "m1/i1.b2", key="k2")  # the dispatcher's stale view: refused here, nothing goes to the node
    assert c.to("dispatcher")[-1] == AssignRefused("m1/i1.b2", "k2", gone=True)
    assert not any(isinstance(m, ToNode) for m in c.to("m1-actor"))


def test_a_new_incarnation_replaces_a_lost_one():
    c = Cluster()
    c.join()
    c.nodes["m1"].last_seen = time.monotonic() - 10
    c.receiveMsg_WakeupMessage(type("W", (), {"payload": "cluster-tick"})(), "cluster")
    c.join(inc="m1-a-2", browsers=("i2.b1",))
    assert c.nodes["m1"].state.value == "up" and c.nodes["m1"].incarnation == "m1-a-2"
    assert "m1-a-1" in c.written_off


def test_drain_refuses_new_work_and_releases_when_the_job_in_flight_ends():
    c = Cluster()
    c.join(browsers=("i1.b1", "i1.b2"))
    assign(c, "m1/i1.b1")
    c.receiveMsg_DrainNode(DrainNode("m1"), "cli")
    assert c.to("cli") == [DrainNodeReply("m1", "draining", 1)]
    assign(c, "m1/i1.b2", key="k2")
    assert c.to("dispatcher")[-1] == AssignRefused("m1/i1.b2", "k2", gone=True)
    c.sent.clear()
    c.receiveMsg_FromNode(FromNode("m1", "m1-a-1", JobFinished("i1.b1", "k1", None)), "m1-actor")
    finished = [m for m in c.to("dispatcher") if isinstance(m, JobFinished)]
    assert finished == [JobFinished("m1/i1.b1", "k1", None, available=False)]
    assert NodeRelease("m1-a-1") in c.to("m1-actor")
    assert [m.browser for m in c.to("dispatcher") if isinstance(m, BrowserGone)] == ["m1/i1.b1"]
    assert "m1" not in c.nodes  # released: gone from the table
    c.receiveMsg_DrainNode(DrainNode("lead"), "cli")
    assert "cannot be drained" in c.to("cli")[-1].error


def test_the_dispatcher_answers_node_lost_once_retries_are_spent():
    d = Dispatcher()  # [jobs] retries = 1 by default
    for b in ("m1/i1.b1", "m2/i1.b1"):
        d.receiveMsg_WorkRequest(WorkRequest(b, "chromium"), "cluster")
    d.receiveMsg_SubmitJob(SubmitJob(SPEC, tag=0), "gateway")
    (first,) = d.assigned()
    d.receiveMsg_BrowserGone(BrowserGone(first.browser, first.job.key, "node_lost", "node m1 lost"), "cluster")
    second = d.assigned()[-1]
    assert second.browser != first.browser and not d.answers()  # retried on the other node
    d.receiveMsg_BrowserGone(BrowserGone(second.browser, second.job.key, "node_lost", "node m2 lost"), "cluster")
    (answer,) = d.answers()
    assert answer.status == "failed" and answer.error.code == "node_lost"
