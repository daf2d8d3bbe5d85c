//! node_exporter-named host samples to metricbeat's `system.*` documents.

use super::{EcsContext, number};
use crate::model::{Document, SampleBatch};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];
/// Linux USER_HZ: metricbeat reports CPU time in ticks of 1/100 s.
const TICKS_PER_SECOND: f64 = 100.0;

/// Keeps the previous CPU totals, because metricbeat's `pct` fields are
/// rates over the last period, not totals.
#[derive(Default)]
pub struct HostDocuments {
    prev_cpu: Option<BTreeMap<String, f64>>,
}

impl HostDocuments {
    pub fn documents(
        &mut self,
        ctx: &EcsContext,
        batch: &SampleBatch,
        period: Duration,
    ) -> Vec<Document> {
        let mut out = Vec::new();
        let ts = batch.timestamp_ms;
        let gauge = |name: &str| {
            batch
                .samples
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.value)
        };

        let mut cpu_by_mode: BTreeMap<String, f64> = BTreeMap::new();
        let mut cores = std::collections::BTreeSet::new();
        for s in batch
            .samples
            .iter()
            .filter(|s| s.name == "node_cpu_seconds_total")
        {
            if let (Some(cpu), Some(mode)) = (s.labels.get("cpu"), s.labels.get("mode")) {
                cores.insert(cpu.to_owned());
                *cpu_by_mode.entry(mode.to_owned()).or_default() += s.value;
            }
        }
        if !cpu_by_mode.is_empty() {
            let n = cores.len().max(1) as f64;
            let mut cpu = Map::new();
            cpu.insert("cores".into(), json!(cores.len()));
            let deltas = self.prev_cpu.as_ref().map(|prev| {
                let d: BTreeMap<&str, f64> = cpu_by_mode
                    .iter()
                    .map(|(m, v)| {
                        (
                            m.as_str(),
                            (v - prev.get(m).copied().unwrap_or(0.0)).max(0.0),
                        )
                    })
                    .collect();
                let total: f64 = d.values().sum();
                (d, total)
            });
            for mode in CPU_MODES {
                let Some(secs) = cpu_by_mode.get(mode) else {
                    continue;
                };
                let mut m = Map::new();
                m.insert("ticks".into(), number((secs * TICKS_PER_SECOND).round()));
                if let Some((d, total)) = &deltas
                    && *total > 0.0
                {
                    let frac = d.get(mode).copied().unwrap_or(0.0) / total;
                    m.insert("pct".into(), pct(frac * n));
                    m.insert("norm".into(), json!({"pct": pct(frac)}));
                }
                cpu.insert(mode.into(), Value::Object(m));
            }
            let mut host_cpu = None;
            if let Some((d, total)) = &deltas
                && *total > 0.0
            {
                let busy = 1.0
                    - (d.get("idle").copied().unwrap_or(0.0)
                        + d.get("iowait").copied().unwrap_or(0.0))
                        / total;
                cpu.insert(
                    "total".into(),
                    json!({"pct": pct(busy * n), "norm": {"pct": pct(busy)}}),
                );
                host_cpu = Some(pct(busy));
            }
            let mut doc = ctx.base(ts, "system.cpu", "system", "cpu", batch.duration, period);
            doc.insert("system".into(), json!({"cpu": cpu}));
            doc.insert("service".into(), json!({"type": "system"}));
            if let Some(p) = host_cpu
                && let Some(Value::Object(host)) = doc.get_mut("host")
            {
                host.insert("cpu".into(), json!({"usage": p}));
            }
            out.push(ctx.document("system.cpu", &[&ctx.host_name], ts, doc));
            self.prev_cpu = Some(cpu_by_mode);
        }

        if let Some(total) = gauge("node_memory_MemTotal_bytes") {
            let free = gauge("node_memory_MemFree_bytes").unwrap_or(0.0);
            let available = gauge("node_memory_MemAvailable_bytes").unwrap_or(free);
            let mut mem = json!({
                "total": number(total),
                "free": number(free),
                "used": {"bytes": number(total - free), "pct": pct(ratio(total - free, total))},
                "actual": {"free": number(available), "used": {"bytes": number(total - available), "pct": pct(ratio(total - available, total))}},
            });
            if let Some(cached) = gauge("node_memory_Cached_bytes") {
                mem["cached"] = number(cached);
            }
            if let (Some(st), Some(sf)) = (
                gauge("node_memory_SwapTotal_bytes"),
                gauge("node_memory_SwapFree_bytes"),
            ) {
                mem["swap"] = json!({"total": number(st), "free": number(sf), "used": {"bytes": number(st - sf), "pct": pct(ratio(st - sf, st))}});
            }
            let mut doc = ctx.base(
                ts,
                "system.memory",
                "system",
                "memory",
                batch.duration,
                period,
            );
            doc.insert("system".into(), json!({"memory": mem}));
            doc.insert("service".into(), json!({"type": "system"}));
            out.push(ctx.document("system.memory", &[&ctx.host_name], ts, doc));
        }

        if let (Some(l1), Some(l5), Some(l15)) = (
            gauge("node_load1"),
            gauge("node_load5"),
            gauge("node_load15"),
        ) {
            let n = cores.len().max(1) as f64;
            let mut doc = ctx.base(ts, "system.load", "system", "load", batch.duration, period);
            doc.insert(
                "system".into(),
                json!({"load": {"1": pct(l1), "5": pct(l5), "15": pct(l15), "cores": cores.len(), "norm": {"1": pct(l1 / n), "5": pct(l5 / n), "15": pct(l15 / n)}}}),
            );
            doc.insert("service".into(), json!({"type": "system"}));
            out.push(ctx.document("system.load", &[&ctx.host_name], ts, doc));
        }

        out.extend(self.filesystem_documents(ctx, batch, period));
        out.extend(self.network_documents(ctx, batch, period));
        out
    }

    fn filesystem_documents(
        &self,
        ctx: &EcsContext,
        batch: &SampleBatch,
        period: Duration,
    ) -> Vec<Document> {
        let mut by_mount: BTreeMap<(String, String, String), BTreeMap<&str, f64>> = BTreeMap::new();
        for s in &batch.samples {
            let field = match s.name.as_str() {
                "node_filesystem_size_bytes" => "size",
                "node_filesystem_free_bytes" => "free",
                "node_filesystem_avail_bytes" => "avail",
                _ => continue,
            };
            let key = (
                s.labels.get("mountpoint").unwrap_or("").to_owned(),
                s.labels.get("device").unwrap_or("").to_owned(),
                s.labels.get("fstype").unwrap_or("").to_owned(),
            );
            by_mount.entry(key).or_default().insert(field, s.value);
        }
        by_mount
            .into_iter()
            .filter_map(|((mount, device, fstype), v)| {
                let size = *v.get("size")?;
                let free = v.get("free").copied().unwrap_or(0.0);
                let avail = v.get("avail").copied().unwrap_or(free);
                let used = size - free;
                let mut doc = ctx.base(batch.timestamp_ms, "system.filesystem", "system", "filesystem", batch.duration, period);
                doc.insert(
                    "system".into(),
                    json!({"filesystem": {"mount_point": mount, "device_name": device, "type": fstype, "total": number(size), "free": number(free), "available": number(avail),
                        // As metricbeat (and df): used over what non-root users can reach.
                        "used": {"bytes": number(used), "pct": pct(ratio(used, used + avail))}}}),
                );
                doc.insert("service".into(), json!({"type": "system"}));
                Some(ctx.document("system.filesystem", &[&ctx.host_name, &mount], batch.timestamp_ms, doc))
            })
            .collect()
    }

    fn network_documents(
        &self,
        ctx: &EcsContext,
        batch: &SampleBatch,
        period: Duration,
    ) -> Vec<Document> {
        let mut by_dev: BTreeMap<String, BTreeMap<&str, f64>> = BTreeMap::new();
        for s in &batch.samples {
            let field = match s.name.as_str() {
                "node_network_receive_bytes_total" => "in.bytes",
                "node_network_receive_packets_total" => "in.packets",
                "node_network_receive_errs_total" => "in.errors",
                "node_network_transmit_bytes_total" => "out.bytes",
                "node_network_transmit_packets_total" => "out.packets",
                "node_network_transmit_errs_total" => "out.errors",
                _ => continue,
            };
            if let Some(dev) = s.labels.get("device") {
                by_dev
                    .entry(dev.to_owned())
                    .or_default()
                    .insert(field, s.value);
            }
        }
        by_dev
            .into_iter()
            .map(|(dev, v)| {
                let get = |k: &str| number(v.get(k).copied().unwrap_or(0.0));
                let mut doc = ctx.base(batch.timestamp_ms, "system.network", "system", "network", batch.duration, period);
                doc.insert(
                    "system".into(),
                    json!({"network": {"name": dev, "in": {"bytes": get("in.bytes"), "packets": get("in.packets"), "errors": get("in.errors")},
                        "out": {"bytes": get("out.bytes"), "packets": get("out.packets"), "errors": get("out.errors")}}}),
                );
                doc.insert("service".into(), json!({"type": "system"}));
                ctx.document("system.network", &[&ctx.host_name, &dev], batch.timestamp_ms, doc)
            })
            .collect()
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Fractions (and load averages) as metricbeat writes them: 4 decimals,
/// always a float so the first document cannot map the field as `long`.
fn pct(v: f64) -> Value {
    let r = (v * 10_000.0).round() / 10_000.0;
    serde_json::Number::from_f64(r)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}
