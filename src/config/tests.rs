use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn errors(yaml: &str) -> Vec<ConfigError> {
    match load_str(yaml, "test.yaml", &no_env) {
        Ok(_) => panic!("config should have been rejected:\n{yaml}"),
        Err(e) => e.0,
    }
}

#[test]
fn embedded_default_is_valid() {
    let c = load_str(EMBEDDED_DEFAULT, "kubegate.yaml", &no_env).unwrap();
    assert_eq!(c.global.scrape_interval, PromDuration::secs(15));
    assert_eq!(c.server.listen_address, "0.0.0.0:9880");
    assert_eq!(
        c.scrape_configs[0].static_configs[0].targets[0].0,
        "127.0.0.1:9880"
    );
    assert_eq!(c.output.sink, SinkKind::File);
    assert_eq!(
        c.output.elasticsearch.as_ref().unwrap().batch_max_bytes,
        ByteSize(5 << 20)
    );
}

#[test]
fn env_expansion_feeds_typed_values() {
    let env = |k: &str| match k {
        "KUBEGATE_SINK" => Some("elasticsearch".to_owned()),
        "ELASTICSEARCH_URL" => Some("https://es.example:9243".to_owned()),
        "KUBEGATE_SCRAPE_INTERVAL" => Some("30s".to_owned()),
        _ => None,
    };
    let c = load_str(EMBEDDED_DEFAULT, "kubegate.yaml", &env).unwrap();
    assert_eq!(c.output.sink, SinkKind::Elasticsearch);
    assert_eq!(
        c.output.elasticsearch.unwrap().hosts[0].0.as_str(),
        "https://es.example:9243/"
    );
    assert_eq!(c.global.scrape_interval, PromDuration::secs(30));
    // The job inherits the global interval; its timeout stays at 10s.
    let c = load_str(
        "global: {scrape_interval: 5s}\nscrape_configs: [{job_name: a}]\n",
        "t",
        &no_env,
    )
    .unwrap();
    assert_eq!(
        c.scrape_timeout(&c.scrape_configs[0]),
        PromDuration::secs(5)
    );
}

/// Each kind of mistake is reported with the right line and key.
#[test]
fn every_kind_of_bad_config_names_line_and_key() {
    let cases: &[(&str, u64, &str, &str)] = &[
        (
            "global:\n  scrape_intervl: 15s\n",
            2,
            "global.scrape_intervl",
            "unknown field",
        ),
        (
            "global:\n  scrape_interval: 15x\n",
            2,
            "global.scrape_interval",
            "invalid duration",
        ),
        (
            "global:\n  scrape_interval: 15\n",
            2,
            "global.scrape_interval",
            "needs a unit",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [\"localhost\"]\n",
            4,
            "scrape_configs[0].static_configs[0].targets[0]",
            "missing :port",
        ),
        (
            "output:\n  sink: file\n  elasticsearch:\n    hosts: [\"ftp://x:1\"]\n",
            4,
            "output.elasticsearch.hosts[0]",
            "scheme must be http or https",
        ),
        (
            "output:\n  elasticsearch:\n    hosts: [\"not a url\"]\n",
            3,
            "output.elasticsearch.hosts[0]",
            "invalid URL",
        ),
        (
            "output:\n  sink: kafka\n",
            2,
            "output.sink",
            "unknown variant `kafka`",
        ),
        (
            "output:\n  file:\n    max_files: many\n",
            3,
            "output.file.max_files",
            "invalid type: string \"many\"",
        ),
        (
            "output:\n  file:\n    max_file_size: 5XB\n",
            3,
            "output.file.max_file_size",
            "unknown unit",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
            4,
            "scrape_configs[0].scrape_timeout",
            "greater than scrape_interval",
        ),
        (
            "scrape_configs:\n  - job_name: a\n  - job_name: a\n",
            3,
            "scrape_configs[1].job_name",
            "used twice",
        ),
        (
            "scrape_configs:\n  - static_configs: []\n",
            2,
            "scrape_configs[0]",
            "missing field `job_name`",
        ),
        (
            "output:\n  sink: elasticsearch\n",
            2,
            "output.sink",
            "no output.elasticsearch section",
        ),
        (
            "server:\n  listen_address: nowhere\n",
            2,
            "server.listen_address",
            "invalid address",
        ),
        (
            "global:\n  external_labels:\n    bad-name: x\n",
            3,
            "global.external_labels.bad-name",
            "invalid label name",
        ),
        (
            "global:\n  data_dir: ${KUBEGATE_NOPE}\n",
            2,
            "",
            "KUBEGATE_NOPE is not set",
        ),
        ("global: [\n", 1, "", "invalid YAML"),
        (
            "scrape_configs:\n  - job_name: a\n    metrics_path: metrics\n",
            3,
            "scrape_configs[0].metrics_path",
            "must start with /",
        ),
    ];
    for (yaml, line, key, needle) in cases {
        let errs = errors(yaml);
        let e = errs
            .iter()
            .find(|e| e.message.contains(needle))
            .unwrap_or_else(|| {
                panic!("no error containing {needle:?} for:\n{yaml}\ngot: {errs:?}")
            });
        assert_eq!(
            (e.line, e.key.as_str()),
            (*line, *key),
            "for {needle:?} in:\n{yaml}"
        );
        assert_eq!(e.file, "test.yaml");
    }
}

#[test]
fn all_errors_are_reported_at_once() {
    let yaml = "global:\n  scrape_interval: 1x\n  typo: 1\nscrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [\"a\", \"b:1\", \"c\"]\noutput:\n  bogus: true\n";
    let errs = errors(yaml);
    let keys: Vec<_> = errs.iter().map(|e| (e.line, e.key.clone())).collect();
    assert!(
        keys.contains(&(2, "global.scrape_interval".into())),
        "{errs:?}"
    );
    assert!(keys.contains(&(3, "global.typo".into())), "{errs:?}");
    assert!(
        keys.contains(&(7, "scrape_configs[0].static_configs[0].targets[0]".into())),
        "{errs:?}"
    );
    assert!(keys.contains(&(9, "output.bogus".into())), "{errs:?}");
    // "c" shifts to index 1 once "a" is cut out, but keeps its own line.
    assert!(errs.iter().any(|e| e.message.contains("\"c\"")), "{errs:?}");
    let text = ConfigErrors(errs).to_string();
    assert!(
        text.contains("test.yaml:3: global.typo: unknown field `typo`"),
        "{text}"
    );
}

#[test]
fn yaml_1_1_booleans_and_numbers_stay_text_in_labels() {
    let c = load_str(
        "global:\n  external_labels: {backup: no, port: 8080, zone: 010}\n",
        "t",
        &no_env,
    )
    .unwrap();
    assert_eq!(c.global.external_labels["backup"], "no");
    assert_eq!(c.global.external_labels["port"], "8080");
    assert_eq!(c.global.external_labels["zone"], "010");
}

#[test]
fn empty_file_is_all_defaults() {
    let c = load_str("", "t", &no_env).unwrap();
    assert!(c.scrape_configs.is_empty());
    assert!(c.host_metrics.enabled);
    assert_eq!(c.output.sink, SinkKind::File);
}
