#!/usr/bin/env python3
"""Manual end-to-end check of a Kafka-protocol broker (e.g. the xqueue-test/tansu image).

Not run by CI. Needs `confluent-kafka` (bundles a recent librdkafka); install it in a
throw-away venv, not as a project dependency:

    python3 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install confluent-kafka
    P=39092
    CID=$(docker run -d -p 127.0.0.1:$P:9092 -e ADVERTISED_LISTENER_URL=tcp://127.0.0.1:$P \
          xqueue-test/tansu:0.1.2)
    /tmp/kvenv/bin/python scripts/images/kafka_smoke.py 127.0.0.1:$P
    docker rm -f "$CID"

Creates a topic with the admin client, produces N keyed messages, consumes them all
with a consumer group of two members, commits, and checks the committed offsets.
(Debian's kcat links librdkafka 2.0.2, which cannot parse tansu's ApiVersions reply.)
"""

import argparse
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap", help="host:port the broker advertises, e.g. 127.0.0.1:39092")
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=90.0)
    args = ap.parse_args()

    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    group = f"group-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=args.partitions, replication_factor=1)]).values():
        f.result(timeout=15)
    md = admin.list_topics(topic, timeout=10)
    nparts = len(md.topics[topic].partitions)
    print(f"created {topic} with {nparts} partitions; brokers: "
          f"{[f'{b.host}:{b.port}' for b in md.brokers.values()]}")

    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5})
    errors = []
    for i in range(args.messages):
        producer.produce(topic, key=str(i).encode(), value=f"msg-{i}".encode(),
                         on_delivery=lambda err, _m: err and errors.append(err))
        producer.poll(0)
    if producer.flush(30) != 0 or errors:
        print(f"produce failed: {errors[:3]}", file=sys.stderr)
        return 1
    print(f"produced {args.messages} messages in {time.monotonic() - t0:.1f}s")

    seen: dict[str, set[str]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def member(name: str) -> None:
        c = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # tansu finishes JoinGroup only after the rebalance timeout.
            "max.poll.interval.ms": 7000,
            "session.timeout.ms": 6000,
        })
        c.subscribe([topic])
        mine = set()
        try:
            while not stop.is_set():
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    raise KafkaException(m.error())
                mine.add(m.value().decode())
                c.commit(message=m, asynchronous=False)
                with lock:
                    seen[name] = mine
                    if sum(len(s) for s in seen.values()) >= args.messages:
                        stop.set()
        finally:
            c.close()

    threads = [threading.Thread(target=member, args=(f"m{i}",), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    stop.wait(args.timeout)
    stop.set()
    for t in threads:
        t.join(15)
    with lock:
        total = set().union(*seen.values()) if seen else set()
        split = {k: len(v) for k, v in seen.items()}
    print(f"consumed {len(total)} distinct messages, per member {split}, "
          f"at {time.monotonic() - t0:.1f}s")
    if len(total) != args.messages:
        print("FAILED: not every message was consumed", file=sys.stderr)
        return 1

    probe = Consumer({"bootstrap.servers": args.bootstrap, "group.id": group})
    committed = probe.committed([TopicPartition(topic, p) for p in range(nparts)], timeout=10)
    probe.close()
    total_committed = sum(tp.offset for tp in committed if tp.offset >= 0)
    print(f"committed offsets sum to {total_committed}")
    if total_committed != args.messages:
        print("FAILED: committed offsets do not cover every message", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
