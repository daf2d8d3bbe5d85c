//! Target bodies for the load server: rendered once per target, values
//! patched in place per scrape.

use bytes::Bytes;

use super::testgen::{APPS, NAMESPACES, PHASES, Rng};

/// The exposition tests' generator (its pods, namespaces and random
/// hex), seeded so every target gets a body of its own.
fn rng(seed: u64) -> Rng {
    Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
}

/// How a value slot changes from one scrape to the next. Every changing
/// value has a fixed width, so patching never moves the rest of the body.
#[derive(Clone, Copy)]
enum SlotKind {
    /// A 10-digit integer counter: `base + seq * step`.
    Counter,
    /// A float counter `ddddd.dddddd` (micro-units `base + seq * step`).
    Seconds,
    /// A 10-digit gauge that moves up and down.
    Gauge,
}

#[derive(Clone, Copy)]
struct Slot {
    offset: u32,
    kind: SlotKind,
    step: u32,
    base: u64,
}

impl Slot {
    fn width(kind: SlotKind) -> usize {
        match kind {
            SlotKind::Counter | SlotKind::Gauge => 10,
            SlotKind::Seconds => 12,
        }
    }

    fn value(&self, seq: u64) -> u64 {
        match self.kind {
            // Stays within 10 digits for ~10^5 scrapes.
            SlotKind::Counter => {
                (self.base + seq * self.step as u64) % 9_000_000_000 + 1_000_000_000
            }
            SlotKind::Seconds => {
                (self.base + seq * self.step as u64) % 89_999_999_999 + 10_000_000_000
            }
            SlotKind::Gauge => {
                let mut z = self.base ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                1_000_000_000 + (z ^ (z >> 31)) % 8_000_000_000
            }
        }
    }

    fn write(&self, buf: &mut [u8], seq: u64) {
        let at = self.offset as usize;
        let mut v = self.value(seq);
        match self.kind {
            SlotKind::Counter | SlotKind::Gauge => write_digits(&mut buf[at..at + 10], v),
            SlotKind::Seconds => {
                let frac = v % 1_000_000;
                v /= 1_000_000;
                write_digits(&mut buf[at..at + 5], v);
                buf[at + 5] = b'.';
                write_digits(&mut buf[at + 6..at + 12], frac);
            }
        }
    }
}

fn write_digits(dst: &mut [u8], mut v: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// One target's body: the rendered text and where its changing values are.
pub(crate) struct Body {
    pub(crate) template: Vec<u8>,
    slots: Vec<Slot>,
    pub(crate) samples: u64,
}

impl Body {
    /// Values that change from scrape to scrape.
    pub(crate) fn changing(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn render(&self, seq: u64) -> Bytes {
        let mut buf = self.template.clone();
        for s in &self.slots {
            s.write(&mut buf, seq);
        }
        Bytes::from(buf)
    }
}

const HANDLERS: [&str; 2] = ["/api/v1/orders", "/healthz"];
const REQUESTS: [(&str, &str); 3] = [("GET", "200"), ("GET", "404"), ("POST", "201")];
const BUCKETS: [&str; 9] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf",
];
/// Series per pod in a body (see `build_body`).
const SERIES_PER_POD: usize = 33;

struct Pod {
    ns: &'static str,
    name: String,
    uid: String,
    node: String,
    host_ip: String,
    pod_ip: String,
    containers: [String; 2],
}

/// Builds `body.template` line by line, recording value slots.
struct Writer<'a> {
    body: &'a mut Body,
    rng: &'a mut Rng,
    left: usize,
}

impl Writer<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        if self.left > 0 {
            let t = &mut self.body.template;
            t.extend_from_slice(format!("# HELP {name} {help}\n# TYPE {name} {kind}\n").as_bytes());
        }
    }

    /// Writes `name{labels} ` when the body still wants samples.
    fn begin(&mut self, series: &str) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        self.body.samples += 1;
        let t = &mut self.body.template;
        t.extend_from_slice(series.as_bytes());
        t.push(b' ');
        true
    }

    /// `name{labels} value`: a constant value.
    fn fixed(&mut self, series: &str, value: &str) {
        if self.begin(series) {
            let t = &mut self.body.template;
            t.extend_from_slice(value.as_bytes());
            t.push(b'\n');
        }
    }

    /// `name{labels} value`: a value that changes every scrape.
    fn moving(&mut self, series: &str, kind: SlotKind, base: u64, step: u32) {
        if !self.begin(series) {
            return;
        }
        let t = &mut self.body.template;
        let slot = Slot {
            offset: t.len() as u32,
            kind,
            step,
            base,
        };
        t.resize(t.len() + Slot::width(kind), b'0');
        t.push(b'\n');
        slot.write(t, 0);
        self.body.slots.push(slot);
    }

    fn counter(&mut self, series: &str) {
        let base = self.rng.below(4_000_000_000);
        let step = 1 + self.rng.below(1000) as u32;
        self.moving(series, SlotKind::Counter, base, step);
    }
}

/// A body of exactly `series` samples shaped like kube-state-metrics pod
/// families next to an application's own (counters, a gauge, a
/// histogram), 3 to 6 labels a series, families grouped as exporters
/// write them. About 64% of the values change on every scrape.
pub(crate) fn build_body(target: usize, series: usize) -> Body {
    let mut rng = rng(0x6b75_6265 ^ (target as u64) << 20);
    let pods: Vec<Pod> = (0..series.div_ceil(SERIES_PER_POD))
        .map(|j| {
            let app = APPS[j % APPS.len()];
            // Drawn before the name, as the bodies always were.
            let uid = rng.uid();
            Pod {
                ns: NAMESPACES[(target + j) % NAMESPACES.len()],
                name: format!("{app}-{}-{}", rng.hex(10), rng.hex(5)),
                uid,
                node: format!(
                    "ip-10-{}-{}-{}.ec2.internal",
                    target % 250,
                    j % 250,
                    target / 250
                ),
                host_ip: format!("10.{}.{}.{}", target % 250, j % 250, 1 + target / 250),
                pod_ip: format!(
                    "100.{}.{}.{}",
                    64 + target % 64,
                    j % 250,
                    1 + rng.below(250)
                ),
                containers: [app.to_owned(), "istio-proxy".to_owned()],
            }
        })
        .collect();
    let mut body = Body {
        template: Vec::with_capacity(series * 170),
        slots: Vec::with_capacity(series),
        samples: 0,
    };
    let mut w = Writer {
        body: &mut body,
        rng: &mut rng,
        left: series,
    };

    w.family("kube_pod_info", "gauge", "Information about pod.");
    for p in &pods {
        w.fixed(
            &format!(
                "kube_pod_info{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",host_ip=\"{}\",pod_ip=\"{}\",node=\"{}\"}}",
                p.ns, p.name, p.uid, p.host_ip, p.pod_ip, p.node
            ),
            "1",
        );
    }
    w.family("kube_pod_status_phase", "gauge", "The pods current phase.");
    for p in &pods {
        for phase in PHASES {
            w.fixed(
                &format!(
                    "kube_pod_status_phase{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",phase=\"{phase}\"}}",
                    p.ns, p.name, p.uid
                ),
                if phase == "Running" { "1" } else { "0" },
            );
        }
    }
    w.family(
        "kube_pod_container_status_restarts_total",
        "counter",
        "The number of container restarts per container.",
    );
    for p in &pods {
        for c in &p.containers {
            let restarts = if w.rng.below(5) == 0 {
                w.rng.below(40)
            } else {
                0
            };
            w.fixed(
                &format!(
                    "kube_pod_container_status_restarts_total{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",container=\"{c}\"}}",
                    p.ns, p.name, p.uid
                ),
                &restarts.to_string(),
            );
        }
    }
    w.family(
        "kube_pod_container_resource_requests",
        "gauge",
        "The number of requested request resource by a container.",
    );
    for p in &pods {
        for c in &p.containers {
            let cpu = format!("{}", (1 + w.rng.below(40)) as f64 * 0.05);
            let mem = format!("{}", (1 + w.rng.below(64)) * 67_108_864);
            for (resource, unit, v) in [("cpu", "core", cpu), ("memory", "byte", mem)] {
                w.fixed(
                    &format!(
                        "kube_pod_container_resource_requests{{namespace=\"{}\",pod=\"{}\",container=\"{c}\",node=\"{}\",resource=\"{resource}\",unit=\"{unit}\"}}",
                        p.ns, p.name, p.node
                    ),
                    &v,
                );
            }
        }
    }
    w.family(
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed in seconds.",
    );
    for p in &pods {
        for c in &p.containers {
            let base = w.rng.below(20_000_000_000);
            let step = 1 + w.rng.below(3_000_000) as u32;
            w.moving(
                &format!(
                    "container_cpu_usage_seconds_total{{namespace=\"{}\",pod=\"{}\",container=\"{c}\",cpu=\"total\"}}",
                    p.ns, p.name
                ),
                SlotKind::Seconds,
                base,
                step,
            );
        }
    }
    w.family(
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set in bytes.",
    );
    for p in &pods {
        for c in &p.containers {
            let base = w.rng.next();
            w.moving(
                &format!(
                    "container_memory_working_set_bytes{{namespace=\"{}\",pod=\"{}\",container=\"{c}\"}}",
                    p.ns, p.name
                ),
                SlotKind::Gauge,
                base,
                0,
            );
        }
    }
    w.family(
        "http_requests_total",
        "counter",
        "Total number of HTTP requests by handler, method and status code.",
    );
    for p in &pods {
        for h in HANDLERS {
            for (method, code) in REQUESTS {
                w.counter(&format!(
                    "http_requests_total{{namespace=\"{}\",pod=\"{}\",handler=\"{h}\",method=\"{method}\",code=\"{code}\"}}",
                    p.ns, p.name
                ));
            }
        }
    }
    w.family(
        "http_request_duration_seconds",
        "histogram",
        "Latency of HTTP requests.",
    );
    for p in &pods {
        let labels = format!(
            "namespace=\"{}\",pod=\"{}\",handler=\"{}\",method=\"GET\"",
            p.ns, p.name, HANDLERS[0]
        );
        // Cumulative buckets: bucket k is (k+1) times a base, growing by
        // (k+1) times a step, so `le` order holds on every scrape.
        let base = 100_000_000 + w.rng.below(10_000_000);
        let step = 1 + w.rng.below(100) as u32;
        for (k, le) in BUCKETS.iter().enumerate() {
            let m = k as u64 + 1;
            w.moving(
                &format!("http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}}"),
                SlotKind::Counter,
                base * m,
                step * m as u32,
            );
        }
        let sum_base = w.rng.below(20_000_000_000);
        w.moving(
            &format!("http_request_duration_seconds_sum{{{labels}}}"),
            SlotKind::Seconds,
            sum_base,
            step * 40_000,
        );
        w.moving(
            &format!("http_request_duration_seconds_count{{{labels}}}"),
            SlotKind::Counter,
            base * BUCKETS.len() as u64,
            step * BUCKETS.len() as u32,
        );
    }
    debug_assert_eq!(body.samples as usize, series);
    body
}
