//! Randomized differential test of the PromQL evaluator against Debian's
//! prometheus 2.42: random series are written as OpenMetrics, backfilled
//! into Prometheus with `promtool tsdb create-blocks-from openmetrics` and
//! appended to a kubegate `Tsdb`; random expressions from the supported
//! subset (plus a fixed list naming every function and operator) are
//! evaluated by both, instant and range, and must agree within float
//! tolerance, or both fail. `PROMQL_DIFF_SEED=n` reproduces one seed.

mod common;

use kubegate::model::Labels;
use kubegate::promql::{self, Value};
use kubegate::tsdb::Tsdb;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

struct Series {
    name: String,
    labels: Vec<(String, String)>,
    samples: Vec<(i64, f64)>,
}

const MIN: i64 = 60_000;
const SPAN: i64 = 120 * MIN;

/// Series for one seed: counters with resets, float gauges, classic
/// histograms, and NaN/Inf gauges; 15 s/30 s/60 s intervals with jitter,
/// gaps longer than the lookback, late starts and early ends.
fn generate(rng: &mut Rng, t0: i64) -> Vec<Series> {
    let mut out = Vec::new();
    let timeline = |rng: &mut Rng| -> Vec<i64> {
        let interval = rng.pick(&[15_000i64, 15_000, 30_000, 60_000]);
        let start = if rng.chance(0.2) {
            rng.below(40) as i64 * MIN
        } else {
            0
        };
        let end = if rng.chance(0.2) {
            SPAN - rng.below(40) as i64 * MIN
        } else {
            SPAN
        };
        let mut ts = Vec::new();
        let mut t = start;
        while t <= end {
            if rng.chance(0.01) {
                t += interval * (6 + rng.below(20) as i64);
                continue;
            }
            let jitter = rng.below(1000) as i64 - 500;
            let at = t0 + t + jitter;
            if ts.last().is_none_or(|&l| at > l) {
                ts.push(at);
            }
            t += interval;
        }
        ts
    };
    for job in ["api", "web"] {
        for instance in ["a", "b", "c"] {
            for code in ["200", "500"] {
                let mut v = rng.f() * 100.0;
                let samples = timeline(rng)
                    .into_iter()
                    .map(|t| {
                        if rng.chance(0.01) {
                            v = rng.f() * 5.0;
                        } else {
                            v += rng.f() * 10.0;
                        }
                        (t, v)
                    })
                    .collect();
                out.push(Series {
                    name: "kg_requests_total".into(),
                    labels: vec![
                        ("code".into(), code.into()),
                        ("instance".into(), instance.into()),
                        ("job".into(), job.into()),
                    ],
                    samples,
                });
            }
            let mut g = rng.f() * 50.0 - 25.0;
            let samples = timeline(rng)
                .into_iter()
                .map(|t| {
                    g += rng.f() * 4.0 - 2.0;
                    (t, g)
                })
                .collect();
            out.push(Series {
                name: "kg_temp".into(),
                labels: vec![
                    ("instance".into(), instance.into()),
                    ("job".into(), job.into()),
                ],
                samples,
            });
            // A classic histogram: one timeline, every bucket grows.
            let times = timeline(rng);
            let bounds = ["0.1", "0.5", "1", "5", "+Inf"];
            let mut counts = [0.0f64; 5];
            let mut per_bucket: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 5];
            for &t in &times {
                let mut acc = 0.0;
                for (i, c) in counts.iter_mut().enumerate() {
                    acc += rng.f() * 3.0;
                    *c += acc;
                    per_bucket[i].push((t, *c));
                }
            }
            for (i, le) in bounds.iter().enumerate() {
                out.push(Series {
                    name: "kg_latency_seconds_bucket".into(),
                    labels: vec![
                        ("instance".into(), instance.into()),
                        ("job".into(), job.into()),
                        ("le".into(), (*le).into()),
                    ],
                    samples: per_bucket[i].clone(),
                });
            }
        }
    }
    for kind in ["nan", "inf"] {
        let samples = timeline(rng)
            .into_iter()
            .map(|t| {
                let v = match (kind, rng.below(10)) {
                    ("nan", 0) => f64::NAN,
                    ("inf", 0) => f64::INFINITY,
                    ("inf", 1) => f64::NEG_INFINITY,
                    _ => rng.f() * 10.0,
                };
                (t, v)
            })
            .collect();
        out.push(Series {
            name: "kg_weird".into(),
            labels: vec![("kind".into(), kind.into())],
            samples,
        });
    }
    out
}

fn om_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

fn openmetrics(series: &[Series]) -> String {
    let mut out = String::new();
    for s in series {
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        for &(t, v) in &s.samples {
            let _ = writeln!(
                out,
                "{}{{{}}} {} {}.{:03}",
                s.name,
                labels.join(","),
                om_value(v),
                t / 1000,
                t % 1000
            );
        }
    }
    out.push_str("# EOF\n");
    out
}

// ---------------------------------------------------------------------------
// Expressions

const COUNTER: &str = "kg_requests_total";
const GAUGE: &str = "kg_temp";
const BUCKET: &str = "kg_latency_seconds_bucket";

struct Gen<'a> {
    rng: &'a mut Rng,
    t0: i64,
}

impl Gen<'_> {
    fn matchers(&mut self) -> String {
        let mut m = Vec::new();
        if self.rng.chance(0.5) {
            m.push(
                self.rng
                    .pick(&[
                        r#"job="api""#,
                        r#"job!="web""#,
                        r#"instance=~"a|b""#,
                        r#"instance!~"c""#,
                        r#"job=~"w.*""#,
                        r#"instance!="a""#,
                    ])
                    .to_string(),
            );
        }
        if self.rng.chance(0.2) {
            m.push(
                self.rng
                    .pick(&[r#"code="500""#, r#"code!~"5..""#])
                    .to_string(),
            );
        }
        if m.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", m.join(","))
        }
    }

    fn modifiers(&mut self) -> String {
        let mut s = String::new();
        if self.rng.chance(0.15) {
            let at = (self.t0 + 30 * MIN + self.rng.below(80) as i64 * MIN) / 1000;
            let _ = write!(s, " @ {at}");
        }
        if self.rng.chance(0.2) {
            s.push_str(
                self.rng
                    .pick(&[" offset 1m", " offset 5m", " offset 90s", " offset -2m"]),
            );
        }
        s
    }

    fn selector(&mut self, name: &str) -> String {
        format!("{name}{}{}", self.matchers(), self.modifiers())
    }

    fn range(&mut self) -> &'static str {
        self.rng.pick(&["1m", "2m", "5m", "10m", "3m30s"])
    }

    fn range_selector(&mut self, name: &str) -> String {
        let (m, r, md) = (self.matchers(), self.range(), self.modifiers());
        format!("{name}{m}[{r}]{md}")
    }

    /// An instant vector without NaN/Inf ties, safe for topk and sorting.
    fn nice(&mut self, depth: u32) -> String {
        match self.rng.below(if depth == 0 { 3 } else { 7 }) {
            0 => self.selector(GAUGE),
            1 => format!("rate({})", self.range_selector(COUNTER)),
            2 => self.selector(COUNTER),
            3 => format!("sum by (job, instance) ({})", self.nice(depth - 1)),
            4 => format!("{} * 2", self.nice(depth - 1)),
            5 => format!("avg_over_time({})", self.range_selector(GAUGE)),
            _ => format!("deriv({})", self.range_selector(GAUGE)),
        }
    }

    fn grouping(&mut self) -> String {
        self.rng
            .pick(&[
                "",
                " by (job)",
                " by (job, instance)",
                " without (instance)",
                " without (code, instance)",
                " by (__name__)",
            ])
            .to_string()
    }

    fn range_fn(&mut self) -> String {
        let sel = if self.rng.chance(0.5) {
            self.range_selector(COUNTER)
        } else {
            self.range_selector(GAUGE)
        };
        let sel = if self.rng.chance(0.1) {
            let step = self.rng.pick(&["", "1m", "30s", "45s"]);
            let inner = self.nice(1);
            format!("({inner})[{}:{step}]{}", self.range(), self.modifiers())
        } else {
            sel
        };
        let f = self.rng.pick(&[
            "rate",
            "irate",
            "increase",
            "delta",
            "idelta",
            "deriv",
            "changes",
            "resets",
            "avg_over_time",
            "min_over_time",
            "max_over_time",
            "sum_over_time",
            "count_over_time",
            "last_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "present_over_time",
            "quantile_over_time",
            "predict_linear",
            "absent_over_time",
        ]);
        match f {
            "quantile_over_time" => format!(
                "quantile_over_time({}, {sel})",
                self.rng.pick(&["0", "0.25", "0.5", "0.99", "1"])
            ),
            "predict_linear" => format!(
                "predict_linear({sel}, {})",
                self.rng.pick(&["60", "600", "-30"])
            ),
            _ => format!("{f}({sel})"),
        }
    }

    fn vector(&mut self, depth: u32) -> String {
        if depth == 0 {
            return match self.rng.below(4) {
                0 => self.selector(COUNTER),
                1 => self.selector(GAUGE),
                2 => self.range_fn(),
                _ => self.selector("kg_weird"),
            };
        }
        let d = depth - 1;
        match self.rng.below(20) {
            0 | 1 => self.range_fn(),
            2 => {
                let op = self.rng.pick(&[
                    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
                ]);
                format!("{op}{} ({})", self.grouping(), self.vector(d))
            }
            3 => {
                let op = self.rng.pick(&["topk", "bottomk"]);
                let k = self.rng.pick(&["1", "2", "5"]);
                format!("{op}{} ({k}, {})", self.grouping(), self.nice(d))
            }
            4 => format!(
                "quantile{} ({}, {})",
                self.grouping(),
                self.rng.pick(&["0.1", "0.5", "0.9", "2", "-1"]),
                self.vector(d)
            ),
            5 => format!(
                "count_values{} (\"v\", round({}, 5))",
                self.grouping(),
                self.nice(d)
            ),
            6 => {
                let op = self.rng.pick(&[
                    "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "> bool",
                    "< bool", "== bool",
                ]);
                let scalar = self.scalar(d);
                if self.rng.chance(0.5) {
                    format!("{} {op} {scalar}", self.vector(d))
                } else {
                    format!("{scalar} {op} {}", self.vector(d))
                }
            }
            7 | 8 => {
                let op = self.rng.pick(&[
                    "+", "-", "*", "/", ">", "<=", "> bool", "and", "or", "unless",
                ]);
                let m = self.rng.pick(&[
                    "",
                    " on (job, instance)",
                    " ignoring (code)",
                    " on (job)",
                    " on (instance) group_left ()",
                    " on (job) group_left (code)",
                    " ignoring (code) group_right ()",
                ]);
                let (l, r) = match self.rng.below(3) {
                    0 => (
                        format!("sum by (job, instance) ({})", self.vector(d)),
                        format!("sum by (job, instance) ({})", self.vector(d)),
                    ),
                    1 => (
                        format!("rate({})", self.range_selector(COUNTER)),
                        format!("sum by (job) ({})", self.nice(d)),
                    ),
                    _ => (self.selector(GAUGE), self.selector(COUNTER)),
                };
                format!("({l}) {op}{m} ({r})")
            }
            9 => {
                let f = self.rng.pick(&[
                    "abs", "ceil", "floor", "round", "sqrt", "exp", "ln", "log2", "log10",
                ]);
                format!("{f}({})", self.vector(d))
            }
            10 => match self.rng.below(3) {
                0 => format!("clamp({}, -5, 20)", self.vector(d)),
                1 => format!("clamp_min({}, 0)", self.vector(d)),
                _ => format!("clamp_max({}, 10)", self.vector(d)),
            },
            11 => {
                let g = self.rng.pick(&["le", "le, job", "job, le, instance"]);
                let q = self.rng.pick(&["0.5", "0.9", "0.99", "0", "1"]);
                let w = self.range();
                format!(
                    "histogram_quantile({q}, sum by ({g}) (rate({BUCKET}{}[{w}])))",
                    self.matchers()
                )
            }
            12 => format!(
                "label_replace({}, \"dst\", \"x-$1\", \"instance\", \"(a|b)\")",
                self.vector(d)
            ),
            13 => format!(
                "label_join({}, \"dst\", \"/\", \"job\", \"instance\")",
                self.vector(d)
            ),
            14 => format!("timestamp({})", self.selector(GAUGE)),
            15 => match self.rng.below(3) {
                0 => format!("absent(kg_nope{{job=\"x\"}}{})", self.modifiers()),
                1 => format!("absent({})", self.selector(GAUGE)),
                _ => format!("vector({})", self.scalar(d)),
            },
            16 => format!(
                "{}({})",
                self.rng.pick(&["sort", "sort_desc"]),
                self.nice(d)
            ),
            17 => format!("-{}", self.vector(d)),
            18 => format!(
                "max_over_time(({})[{}:{}])",
                self.nice(d),
                self.range(),
                self.rng.pick(&["1m", "20s", ""])
            ),
            _ => format!("({})", self.vector(d)),
        }
    }

    fn scalar(&mut self, depth: u32) -> String {
        match self.rng.below(if depth == 0 { 2 } else { 4 }) {
            0 => self.rng.pick(&["2", "0.5", "-1", "10", "0"]).to_string(),
            1 => "time()".into(),
            2 => format!("scalar(sum({}))", self.nice(depth - 1)),
            _ => format!("({} + 1)", self.scalar(depth - 1)),
        }
    }
}

/// Every function and operator at least once, whatever the seed draws.
const FIXED: &[&str] = &[
    "kg_requests_total",
    "kg_requests_total{job=\"api\",code!=\"500\",instance=~\"a|b\",job!~\"x\"}",
    "kg_requests_total offset 5m",
    "rate(kg_requests_total[5m])",
    "irate(kg_requests_total[5m])",
    "increase(kg_requests_total[10m])",
    "delta(kg_temp[5m])",
    "idelta(kg_temp[5m])",
    "deriv(kg_temp[10m])",
    "predict_linear(kg_temp[10m], 300)",
    "changes(kg_temp[10m])",
    "resets(kg_requests_total[30m])",
    "avg_over_time(kg_temp[5m])",
    "min_over_time(kg_weird[10m])",
    "max_over_time(kg_weird[10m])",
    "sum_over_time(kg_temp[5m])",
    "count_over_time(kg_temp[5m])",
    "last_over_time(kg_temp[5m])",
    "quantile_over_time(0.75, kg_temp[10m])",
    "stddev_over_time(kg_temp[10m])",
    "stdvar_over_time(kg_temp[10m])",
    "present_over_time(kg_temp[5m])",
    "absent(kg_nope{job=\"x\"})",
    "absent_over_time(kg_nope{job=\"x\",job=~\"y\"}[5m])",
    "absent_over_time(kg_temp[1m])",
    "abs(kg_temp)",
    "ceil(kg_temp)",
    "floor(kg_temp)",
    "round(kg_temp, 0.5)",
    "clamp(kg_temp, -1, 1)",
    "clamp_min(kg_weird, 3)",
    "clamp_max(kg_weird, 3)",
    "sqrt(kg_temp)",
    "exp(kg_temp)",
    "ln(kg_temp)",
    "log2(kg_weird)",
    "log10(kg_temp)",
    "histogram_quantile(0.9, sum by (le, job) (rate(kg_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, kg_latency_seconds_bucket)",
    "label_replace(kg_temp, \"host\", \"$1\", \"instance\", \"(.*)\")",
    "label_join(kg_temp, \"both\", \"-\", \"job\", \"instance\")",
    "time()",
    "timestamp(kg_temp)",
    "vector(1)",
    "scalar(sum(kg_temp))",
    "sort(kg_temp)",
    "sort_desc(kg_temp)",
    "sum by (job) (kg_requests_total)",
    "avg without (code) (kg_requests_total)",
    "min(kg_temp)",
    "max by (instance) (kg_temp)",
    "count(kg_weird)",
    "group by (job) (kg_temp)",
    "stddev(kg_temp)",
    "stdvar by (job) (kg_temp)",
    "quantile(0.3, kg_temp)",
    "count_values(\"value\", round(kg_temp))",
    "topk(2, kg_temp)",
    "bottomk by (job) (1, kg_temp)",
    "kg_temp > 0",
    "kg_temp > bool 0",
    "0 < kg_temp",
    "kg_weird == bool kg_weird",
    "kg_requests_total / on (job, instance) group_left sum by (job, instance) (kg_requests_total)",
    "sum by (job, instance) (kg_requests_total) * on (job, instance) group_right kg_requests_total",
    "kg_temp + ignoring (code) group_right kg_requests_total",
    "kg_temp and kg_requests_total",
    "kg_temp or kg_weird",
    "kg_requests_total unless on (instance) kg_temp{instance=\"a\"}",
    "kg_requests_total + kg_requests_total",
    "kg_temp - on (job) kg_temp",
    "2 ^ 3 % 5 - 1",
    "kg_temp % 3",
    "-kg_temp",
    "rate(kg_requests_total[5m] @ end())",
    "kg_temp @ start() offset 1m",
    "max_over_time(rate(kg_requests_total[2m])[10m:1m])",
    "sum_over_time(kg_temp[7m:45s] offset 2m)",
];

// ---------------------------------------------------------------------------
// Comparison

#[derive(Debug)]
enum Res {
    Error(#[allow(dead_code)] String),
    Scalar(f64),
    Vector(BTreeMap<String, f64>),
    Matrix(BTreeMap<String, Vec<(i64, f64)>>),
}

fn num(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or_else(|_| panic!("number {s:?}")),
    }
}

fn json_labels(m: &Json) -> String {
    let l = Labels::from_pairs(
        m.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())),
    );
    l.to_string()
}

fn ts_ms(v: &Json) -> i64 {
    (v.as_f64().unwrap() * 1000.0).round() as i64
}

fn prom(url: &str, params: &[(&str, String)]) -> Res {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let (_, body) = common::http_get(&format!("{url}?{q}"));
    let j: Json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
    if j["status"] != "success" {
        return Res::Error(j["error"].as_str().unwrap_or("").to_owned());
    }
    let r = &j["data"]["result"];
    match j["data"]["resultType"].as_str().unwrap() {
        "scalar" => Res::Scalar(num(r[1].as_str().unwrap())),
        "vector" => Res::Vector(
            r.as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        json_labels(&s["metric"]),
                        num(s["value"][1].as_str().unwrap()),
                    )
                })
                .collect(),
        ),
        "matrix" => Res::Matrix(
            r.as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let pts = s["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (ts_ms(&p[0]), num(p[1].as_str().unwrap())))
                        .collect();
                    (json_labels(&s["metric"]), pts)
                })
                .collect(),
        ),
        other => panic!("result type {other}"),
    }
}

fn ours(v: Result<Value, promql::PromqlError>) -> Res {
    match v {
        Err(e) => Res::Error(e.to_string()),
        Ok(Value::Scalar { v, .. }) => Res::Scalar(v),
        Ok(Value::Vector(v)) => {
            Res::Vector(v.into_iter().map(|s| (s.metric.to_string(), s.v)).collect())
        }
        Ok(Value::Matrix(m)) => Res::Matrix(
            m.into_iter()
                .map(|s| (s.metric.to_string(), s.points))
                .collect(),
        ),
        Ok(other) => panic!("unexpected {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

fn same(p: &Res, k: &Res) -> bool {
    match (p, k) {
        (Res::Error(_), Res::Error(_)) => true,
        (Res::Scalar(a), Res::Scalar(b)) => close(*a, *b),
        (Res::Vector(a), Res::Vector(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(l, v)| b.get(l).is_some_and(|w| close(*v, *w)))
        }
        (Res::Matrix(a), Res::Matrix(b)) => {
            a.len() == b.len()
                && a.iter().all(|(l, pts)| {
                    b.get(l).is_some_and(|q| {
                        q.len() == pts.len()
                            && q.iter()
                                .zip(pts)
                                .all(|(x, y)| x.0 == y.0 && close(x.1, y.1))
                    })
                })
        }
        _ => false,
    }
}

fn run_seed(seed: u64) -> (usize, Vec<String>) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let now = kubegate::model::now_ms();
    let t0 = (now - 3 * 3_600_000) / 60_000 * 60_000;
    let series = generate(&mut rng, t0);
    let dir = tempfile::tempdir().unwrap();
    let om = dir.path().join("series.om");
    std::fs::write(&om, openmetrics(&series)).unwrap();
    let prometheus = common::promql_peer::start_prometheus_with_openmetrics(&om);
    let db = Tsdb::new(Duration::from_secs(30 * 86_400));
    for s in &series {
        let labels = Labels::from_pairs(s.labels.clone());
        for &(t, v) in &s.samples {
            db.append(&s.name, &labels, t, v);
        }
    }
    let mut exprs: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
    let mut g = Gen { rng: &mut rng, t0 };
    for _ in 0..150 {
        let depth = g.rng.below(3) as u32 + 1;
        exprs.push(g.vector(depth));
    }
    let mut failures = Vec::new();
    let mut compared = 0;
    for expr in &exprs {
        let parsed = match promql::parse(expr) {
            Ok(e) => e,
            Err(e) => {
                let p = prom(
                    &format!("{}/api/v1/query", prometheus.url()),
                    &[("query", expr.clone())],
                );
                if !matches!(p, Res::Error(_)) {
                    failures.push(format!(
                        "{expr}: kubegate cannot parse ({e}), prometheus can"
                    ));
                }
                continue;
            }
        };
        for _ in 0..2 {
            let t = t0 + 5 * MIN + rng.below((SPAN + 10 * MIN) as u64) as i64;
            let p = prom(
                &format!("{}/api/v1/query", prometheus.url()),
                &[
                    ("query", expr.clone()),
                    ("time", format!("{}.{:03}", t / 1000, t % 1000)),
                ],
            );
            let k = ours(promql::instant_query(&db, &parsed, t));
            compared += 1;
            if !same(&p, &k) {
                failures.push(format!(
                    "instant {expr} @ {t} (t0+{}s):\n  prometheus: {p:?}\n  kubegate:   {k:?}",
                    (t - t0) / 1000
                ));
            }
        }
        if matches!(
            promql::instant_query(&db, &parsed, t0),
            Ok(Value::Matrix(_))
        ) {
            continue;
        }
        let start = t0 + rng.below(SPAN as u64) as i64 / 1000 * 1000;
        let step = rng.pick(&[15_000i64, 60_000, 37_000]);
        let end = start + 20 * MIN;
        let p = prom(
            &format!("{}/api/v1/query_range", prometheus.url()),
            &[
                ("query", expr.clone()),
                ("start", (start / 1000).to_string()),
                ("end", (end / 1000).to_string()),
                ("step", format!("{}", step as f64 / 1000.0)),
            ],
        );
        let k = ours(promql::range_query(&db, &parsed, start, end, step));
        compared += 1;
        if !same(&p, &k) {
            failures.push(format!("range {expr} [{start}..{end} step {step}]:\n  prometheus: {p:?}\n  kubegate:   {k:?}"));
        }
    }
    (compared, failures)
}

#[test]
fn promql_matches_prometheus_on_random_series_and_expressions() {
    let seeds: Vec<u64> = match std::env::var("PROMQL_DIFF_SEED") {
        Ok(s) => vec![s.parse().expect("PROMQL_DIFF_SEED is a number")],
        Err(_) => vec![1, 2],
    };
    let mut report = String::new();
    let mut total = 0;
    for seed in seeds {
        let (compared, failures) = run_seed(seed);
        total += compared;
        for f in failures.iter().take(15) {
            let _ = writeln!(report, "seed {seed}: {f}");
        }
        if failures.len() > 15 {
            let _ = writeln!(report, "seed {seed}: ... and {} more", failures.len() - 15);
        }
    }
    assert!(report.is_empty(), "differences from prometheus:\n{report}");
    assert!(total > 300, "only {total} comparisons ran");
}
