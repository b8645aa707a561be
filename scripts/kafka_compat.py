"""Unmodified Kafka clients against a running three-node Raftline cluster.

Run by scripts/kafka-compat.sh (which installs the clients, starts the cluster
and stops it); each check prints PASS or raises. Arguments: the Kafka
bootstrap servers, the repository root (for scripts/cluster.sh and the
raftline CLI), and the gRPC bootstrap servers.
"""

import json
import subprocess
import sys
import time
import uuid

import confluent_kafka
import kafka
from confluent_kafka import Consumer, Producer, TopicPartition

BOOTSTRAP, ROOT, GRPC = sys.argv[1], sys.argv[2], sys.argv[3]
RAFTLINE = f"{ROOT}/target/release/raftline"


def raftline(*args):
    out = subprocess.run([RAFTLINE, *args, "--bootstrap-server", GRPC],
                         check=True, capture_output=True, text=True)
    return out.stdout


def create_topic(name, partitions=3):
    raftline("topic", "create", name, "--partitions", str(partitions),
             "--replication-factor", "3")


def leader_of(topic, partition):
    described = json.loads(raftline("topic", "describe", topic, "--output", "json"))
    return described[0]["partitions"][partition]["leader"]


def read_all(topic, partitions, expect, timeout=60):
    """Every record of the topic's partitions, from the start, by assignment."""
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "unused",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.time() + timeout
    while len(got) < expect and time.time() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m.value().decode())
    # Anything beyond what was expected (a duplicate) shows up here.
    extra_deadline = time.time() + 2
    while time.time() < extra_deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value().decode())
    c.close()
    return got


def check(name, fn):
    started = time.time()
    fn()
    print(f"PASS {name} ({time.time() - started:.2f} s)", flush=True)


def confluent_idempotent_producer():
    topic = f"ck-{uuid.uuid4().hex[:8]}"
    create_topic(topic)
    for compression in ["none", "zstd", "lz4", "gzip", "snappy"]:
        p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True,
                      "acks": "all", "compression.type": compression, "linger.ms": 5})
        errors, delivered = [], []

        def report(err, msg):
            (errors if err else delivered).append(err or (msg.partition(), msg.offset()))

        for i in range(2000):
            p.produce(topic, key=str(i), value=f"{compression}-{i}", on_delivery=report)
        assert p.flush(30) == 0, "undelivered records"
        assert not errors, errors
        assert len(delivered) == 2000
        assert len(set(delivered)) == 2000, "two records at one offset"
    got = read_all(topic, 3, 10000)
    assert len(got) == 10000 and len(set(got)) == 10000, (len(got), len(set(got)))


def kafka_python_producer_and_consumer():
    topic = f"kp-{uuid.uuid4().hex[:8]}"
    create_topic(topic, partitions=2)
    p = kafka.KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    futures = [p.send(topic, value=f"kp-{i}".encode(), key=str(i).encode()) for i in range(500)]
    p.flush()
    offsets = {(f.get(timeout=10).partition, f.get(timeout=10).offset) for f in futures}
    assert len(offsets) == 500
    p.close()
    c = kafka.KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                            auto_offset_reset="earliest", consumer_timeout_ms=5000)
    c.assign([kafka.TopicPartition(topic, 0), kafka.TopicPartition(topic, 1)])
    c.seek_to_beginning()
    got = sorted(m.value.decode() for m in c)
    c.close()
    assert got == sorted(f"kp-{i}" for i in range(500)), len(got)


def produce_values(topic, values):
    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "acks": "all"})
    for v in values:
        p.produce(topic, key=v, value=v)
    assert p.flush(30) == 0


def group_consumer(group, topic, name):
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "client.id": name,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.subscribe([topic])
    return c


def poll_members(members, want, timeout=60):
    """Polls every member in turn until `want` records came; each member's
    records (committing after each poll, as a careful service does)."""
    got = {id(m): [] for m in members}
    deadline = time.time() + timeout
    while sum(len(v) for v in got.values()) < want and time.time() < deadline:
        for m in members:
            msgs = m.consume(num_messages=100, timeout=0.2)
            ok = [x for x in msgs if x.error() is None]
            got[id(m)].extend(x.value().decode() for x in ok)
            if ok:
                m.commit(asynchronous=False)
    return got


def assignments_settle(members, partitions, sink, timeout=60):
    """Polls until the members' assignments cover every partition once;
    records read meanwhile go to `sink` (and are committed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for m in members:
            msg = m.poll(0.1)
            if msg is not None and msg.error() is None:
                sink.append(msg.value().decode())
                m.commit(asynchronous=False)
        owned = [tp.partition for m in members for tp in m.assignment()]
        if sorted(owned) == list(range(partitions)):
            return [sorted(tp.partition for tp in m.assignment()) for m in members]
    raise AssertionError(f"assignments never settled: {[m.assignment() for m in members]}")


def confluent_consumer_group():
    """Three members share six partitions; one leaves and the others take its
    partitions; committed offsets survive a restart of the whole group."""
    topic = f"cg-{uuid.uuid4().hex[:8]}"
    group = f"billing-{uuid.uuid4().hex[:6]}"
    create_topic(topic, partitions=6)
    produce_values(topic, [f"a{i}" for i in range(600)])
    members = [group_consumer(group, topic, f"m{i}") for i in range(3)]
    early = []
    split = assignments_settle(members, 6, early)
    assert all(len(s) == 2 for s in split), split
    got = poll_members(members, 600 - len(early))
    values = early + [v for vs in got.values() for v in vs]
    assert sorted(values) == sorted(f"a{i}" for i in range(600)), len(values)
    members[2].close()
    early = []
    split = assignments_settle(members[:2], 6, early)
    assert sorted(len(s) for s in split) == [3, 3], split
    assert not early, f"read again after the rebalance: {early[:3]}"
    produce_values(topic, [f"b{i}" for i in range(300)])
    got = poll_members(members[:2], 300)
    values = [v for vs in got.values() for v in vs]
    assert sorted(values) == sorted(f"b{i}" for i in range(300)), len(values)
    for m in members[:2]:
        m.close()
    # The whole group restarts: it resumes where it committed.
    produce_values(topic, [f"c{i}" for i in range(100)])
    again = group_consumer(group, topic, "restarted")
    got = poll_members([again], 100, timeout=30)
    values = [v for vs in got.values() for v in vs]
    extra = again.consume(num_messages=100, timeout=2)
    again.close()
    assert sorted(values) == sorted(f"c{i}" for i in range(100)), values[:5]
    assert not [x for x in extra if x.error() is None], "read again what was committed"
    print(f"  6 partitions: 2+2+2, then 3+3 after a member left; 1,000 records, each once")


def kafka_python_group():
    topic = f"kpg-{uuid.uuid4().hex[:8]}"
    group = f"kpg-{uuid.uuid4().hex[:6]}"
    create_topic(topic, partitions=2)
    produce_values(topic, [f"k{i}" for i in range(200)])
    c = kafka.KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group,
                            auto_offset_reset="earliest", enable_auto_commit=False,
                            consumer_timeout_ms=8000)
    got = []
    for m in c:
        got.append(m.value.decode())
        if len(got) == 200:
            break
    c.commit()
    c.close()
    assert sorted(got) == sorted(f"k{i}" for i in range(200)), len(got)
    c = kafka.KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group,
                            auto_offset_reset="earliest", consumer_timeout_ms=4000)
    again = [m.value for m in c]
    c.close()
    assert again == [], f"{len(again)} records read again after the commit"


def confluent_admin():
    """AdminClient: create (with a config), describe, grow, describe configs,
    list and delete topics; errors come back typed."""
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
    from confluent_kafka import KafkaError
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    topic = f"adm-{uuid.uuid4().hex[:8]}"
    futures = admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=3,
                                            config={"retention.ms": "3600000"})])
    futures[topic].result(30)
    deadline = time.time() + 20
    while topic not in admin.list_topics(timeout=10).topics and time.time() < deadline:
        time.sleep(0.2)
    described = admin.list_topics(topic, timeout=10).topics[topic]
    assert len(described.partitions) == 2, described.partitions
    assert all(len(p.replicas) == 3 for p in described.partitions.values())
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)])[topic].result(30)
        raise AssertionError("created twice")
    except confluent_kafka.KafkaException as e:
        assert e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, e
    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(30)
    deadline = time.time() + 20
    while len(admin.list_topics(topic, timeout=10).topics[topic].partitions) != 4:
        assert time.time() < deadline, "the partitions never showed"
        time.sleep(0.2)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["retention.ms"].value == "3600000", configs["retention.ms"]
    assert configs["cleanup.policy"].value == "delete"
    cluster = admin.describe_cluster().result(30)
    assert len(cluster.nodes) == 3, cluster.nodes
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.time() + 20
    while topic in admin.list_topics(timeout=10).topics:
        assert time.time() < deadline, "the topic never went"
        time.sleep(0.2)


def kafka_python_admin():
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    topic = f"kpa-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])
    deadline = time.time() + 20
    while topic not in admin.list_topics():
        assert time.time() < deadline, "the topic never showed"
        time.sleep(0.2)
    described = admin.describe_topics([topic])
    assert len(described[0]["partitions"]) == 3, described
    groups = admin.list_groups()
    assert isinstance(groups, list), groups
    admin.delete_topics([topic])
    deadline = time.time() + 20
    while topic in admin.list_topics():
        assert time.time() < deadline, "the topic never went"
        time.sleep(0.2)
    admin.close()


def failover_exactly_once():
    """The partition leader is SIGKILLed during an idempotent acks=all run:
    every record the client was told is delivered is read exactly once."""
    topic = f"fo-{uuid.uuid4().hex[:8]}"
    create_topic(topic, partitions=1)
    victim = leader_of(topic, 0)
    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True,
                  "acks": "all", "linger.ms": 2, "message.timeout.ms": 60000})
    delivered, failed = [], []

    def report(err, msg):
        if err:
            failed.append(str(err))
        else:
            delivered.append(msg.value().decode())

    sent = 0
    killed_at = None
    deadline = time.time() + 20
    while time.time() < deadline and (killed_at is None or time.time() < killed_at + 5):
        for _ in range(50):
            p.produce(topic, value=f"fo-{sent}", on_delivery=report)
            sent += 1
        p.poll(0.01)
        if killed_at is None and len(delivered) >= 2000:
            subprocess.run([f"{ROOT}/scripts/cluster.sh", "kill", str(victim)], check=True,
                           capture_output=True)
            killed_at = time.time()
    assert p.flush(60) == 0, "undelivered records"
    assert killed_at is not None, "never got to the kill"
    subprocess.run([f"{ROOT}/scripts/cluster.sh", "restart", str(victim)], check=True,
                   capture_output=True)
    got = read_all(topic, 1, len(delivered))
    seen = {}
    for v in got:
        seen[v] = seen.get(v, 0) + 1
    dups = [v for v, n in seen.items() if n > 1]
    lost = [v for v in delivered if v not in seen]
    assert not dups, f"{len(dups)} duplicated, e.g. {dups[:3]}"
    assert not lost, f"{len(lost)} delivered but lost, e.g. {lost[:3]}"
    print(f"  {sent} sent, {len(delivered)} delivered, {len(failed)} failed, "
          f"broker {victim} killed; none lost, none duplicated")


def main():
    print(f"confluent-kafka {confluent_kafka.version()} (librdkafka {confluent_kafka.libversion()[0]}), "
          f"kafka-python {kafka.__version__}", flush=True)
    check("confluent-kafka: idempotent acks=all producer, every compression, read back once",
          confluent_idempotent_producer)
    check("kafka-python: producer and consumer", kafka_python_producer_and_consumer)
    check("confluent-kafka: a group of three shares partitions, rebalances, resumes from commits",
          confluent_consumer_group)
    check("kafka-python: consumer group reads, commits, resumes", kafka_python_group)
    check("confluent-kafka AdminClient: create, describe, grow, configs, cluster, delete",
          confluent_admin)
    check("kafka-python KafkaAdminClient: create, list, describe, groups, delete", kafka_python_admin)
    check("confluent-kafka: leader killed mid-run, every delivered record read exactly once",
          failover_exactly_once)


if __name__ == "__main__":
    main()
