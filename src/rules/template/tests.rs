use super::*;

fn data() -> AlertData {
    AlertData {
        labels: [("instance", "web-1:9100"), ("job", "node")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        external_labels: [("cluster".to_owned(), "prod".to_owned())].into(),
        external_url: "http://kg".into(),
        value: 1234567.0,
    }
}

fn x(t: &str) -> String {
    Template::alert("__alert_T", t)
        .and_then(|t| t.expand(&data()))
        .unwrap_or_else(|e| format!("ERR {e}"))
}

#[test]
fn prometheus_style_templates_expand() {
    assert_eq!(x("{{ $labels.instance }} down"), "web-1:9100 down");
    assert_eq!(x("{{$value}}"), "1.234567e+06");
    assert_eq!(x("{{ $value | humanize }}"), "1.235M");
    assert_eq!(x("{{ humanize $value }}"), "1.235M");
    assert_eq!(
        x("{{ .Labels.job }}/{{ $externalLabels.cluster }}"),
        "node/prod"
    );
    assert_eq!(x("{{ $labels.nope }}|"), "|");
    assert_eq!(x("{{ printf \"%.2f\" $value }}"), "1234567.00");
    assert_eq!(x("{{ printf \"%s=%d\" \"a\" 3 }}"), "a=3");
    assert_eq!(x("{{ $labels.job | toUpper }}"), "NODE");
    assert_eq!(x("{{ $labels.instance | stripPort }}"), "web-1");
    assert_eq!(
        x("{{ if gt $value 1000.0 }}big{{ else }}small{{ end }}"),
        "big"
    );
    assert_eq!(
        x("{{ if eq $labels.job \"x\" }}a{{ else if eq $labels.job \"node\" }}b{{ end }}"),
        "b"
    );
    assert_eq!(x("a  {{- \"b\" -}}  c"), "abc");
    assert_eq!(x("{{/* note */}}ok"), "ok");
    assert_eq!(x("{{ $x := \"v\" }}{{ $x }}"), "v");
    assert_eq!(
        x("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"),
        "instance=web-1:9100;job=node;"
    );
    assert_eq!(x("{{ with $labels.job }}[{{ . }}]{{ end }}"), "[node]");
    assert_eq!(
        x("{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}"),
        "web-1"
    );
    assert_eq!(x("{{ \"0.5\" | humanizePercentage }}"), "50%");
    assert_eq!(x("{{ 90 | humanizeDuration }}"), "1m 30s");
    assert_eq!(x("{{ title \"hello world\" }}"), "Hello World");
}

#[test]
fn template_errors_read_like_go() {
    assert_eq!(
        x("{{ nosuch $value }}"),
        "ERR template: __alert_T:1: function \"nosuch\" not defined"
    );
    assert!(x("{{ query \"up\" }}").contains("not supported"));
    assert!(x("{{ $value ").contains("unclosed action"));
    assert!(x("{{ if 1 }}x").contains("unexpected EOF"));
    assert!(x("{{ humanize \"abc\" }}").contains("invalid syntax"));
    assert!(x("{{ $undefined }}").contains("undefined variable"));
    let deep_if = "{{ if 1 }}".repeat(100_000);
    assert!(x(&deep_if).contains("nested too deeply"));
    let deep_paren = format!("{{{{ {}1{} }}}}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(x(&deep_paren).contains("nested too deeply"));
    for junk in [
        "{{",
        "}}{{",
        "{{ \"",
        "{{ ( }}",
        "{{ ) }}",
        "{{ | }}",
        "{{ end }}",
        "{{ else }}",
        "{{ range 1 }}x{{ end }}",
        "{{ $x := }}",
    ] {
        let _ = x(junk);
    }
    assert_eq!(
        expand_alert("__alert_T", "{{ nosuch }}", &data()),
        "<error expanding template: template: __alert_T:1: function \"nosuch\" not defined>"
    );
}
