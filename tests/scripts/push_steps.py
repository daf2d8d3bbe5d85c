"""Drives two Pushgateway-compatible servers with prometheus-client's own
push functions, step by step, the same registries to both, and saves each
server's /metrics after every step.

usage: push_steps.py KUBEGATE_URL PUSHGATEWAY_URL OUT_DIR
Writes OUT_DIR/NN-kubegate.txt, OUT_DIR/NN-pushgateway.txt and
OUT_DIR/outcomes.json ([{step, desc, kubegate, pushgateway}], each "ok" or
the client's error text).
"""
import json
import sys
import urllib.request

from prometheus_client import (CollectorRegistry, Counter, Enum, Gauge,
                               Histogram, Info, Summary, delete_from_gateway,
                               push_to_gateway, pushadd_to_gateway)

kubegate, pushgateway, out = sys.argv[1:4]
gateways = {"kubegate": kubegate, "pushgateway": pushgateway}
outcomes = []


def snapshot(step):
    for name, url in gateways.items():
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=30) as r:
            body = r.read()
        with open(f"{out}/{step:02d}-{name}.txt", "wb") as f:
            f.write(body)


def run(desc, fn):
    step = len(outcomes) + 1
    result = {"step": step, "desc": desc}
    for name, url in gateways.items():
        try:
            fn(url)
            result[name] = "ok"
        except Exception as e:  # the client raises on any HTTP error
            result[name] = str(e)
    outcomes.append(result)
    snapshot(step)


full = CollectorRegistry()
c = Counter("jobs_processed", "Jobs processed.", ["queue"], registry=full)
c.labels("a").inc(3)
c.labels("b").inc(1.5)
Gauge("last_success_unixtime", "Last success.", registry=full).set(1700000000.25)
h = Histogram("job_duration_seconds", "Duration.", buckets=(0.1, 1, 10), registry=full)
h.observe(0.05)
h.observe(3)
Summary("batch_size_bytes", "Batch size.", registry=full).observe(1024)
Info("build", "Build info.", registry=full).info({"version": "1.2.3"})
Enum("phase", "Phase.", states=["start", "done"], registry=full).state("done")

more = CollectorRegistry()
Gauge("rows_written", "Rows written.", registry=more).set(42)
Counter("jobs_processed", "Jobs processed.", ["queue"], registry=more).labels("a").inc(10)

cron = CollectorRegistry()
Gauge("cleanup_files_deleted", "Files deleted.", registry=cron).set(7)

small = CollectorRegistry()
Gauge("rows_written", "Rows written.", registry=small).set(1)

wrong_type = CollectorRegistry()
Summary("rows_written", "Rows written, as a summary.", registry=wrong_type).observe(1)

clash = CollectorRegistry()
Gauge("rows_written", "Rows written.", ["instance"], registry=clash).labels("node-1").set(5)

empty = CollectorRegistry()

node1 = {"instance": "node-1"}
cron_key = {"path": "/var/tmp", "shard": "", "zone": "eu west"}

run("PUT a full registry", lambda u: push_to_gateway(u, job="batch", registry=full, grouping_key=node1))
run("POST replaces same-named families only", lambda u: pushadd_to_gateway(u, job="batch", registry=more, grouping_key=node1))
run("PUT with base64 and empty grouping values", lambda u: push_to_gateway(u, job="cron", registry=cron, grouping_key=cron_key))
run("PUT replaces the whole group", lambda u: push_to_gateway(u, job="batch", registry=small, grouping_key=node1))
run("PUT gzip-compressed", lambda u: push_to_gateway(u, job="gz", registry=cron, grouping_key={"instance": "x"}, compression="gzip"))
run("type clash with another group", lambda u: push_to_gateway(u, job="bad", registry=wrong_type))
run("series already in another group", lambda u: pushadd_to_gateway(u, job="batch", registry=clash))
run("DELETE a group", lambda u: delete_from_gateway(u, job="cron", grouping_key=cron_key))
run("PUT an empty registry keeps the group", lambda u: push_to_gateway(u, job="batch", registry=empty, grouping_key=node1))
run("DELETE a group that does not exist", lambda u: delete_from_gateway(u, job="never"))

with open(f"{out}/outcomes.json", "w") as f:
    json.dump(outcomes, f, indent=1)
