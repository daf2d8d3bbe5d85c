use super::*;

type Pairs = &'static [(&'static str, &'static str)];

fn configs(yaml: &str) -> Vec<RelabelConfig> {
    let cfgs: Vec<RelabelConfig> =
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    for c in &cfgs {
        c.validate().unwrap_or_else(|e| panic!("{yaml}: {e}"));
    }
    cfgs
}

/// Expected results re-express Prometheus's relabel_test.go cases and
/// its documentation; each case's name says what it pins down.
#[test]
fn table() {
    #[rustfmt::skip]
    let cases: &[(&str, Pairs, &str, Option<Pairs>)] = &[
        ("replace: ${1} twice", &[("a", "fizz")],
         "[{source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'x${1}-x${1}'}]",
         Some(&[("a", "fizz"), ("d", "xizz-xizz")])),
        ("replace: two sources joined by the separator, then reused", &[("a", "foo"), ("b", "bar"), ("c", "baz")],
         "[{source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'},
           {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}]",
         Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")])),
        ("replace: custom separator", &[("a", "x"), ("b", "y")],
         "[{source_labels: [a, b], separator: '--', target_label: j}]", Some(&[("a", "x"), ("b", "y"), ("j", "x--y")])),
        ("replace: a missing source is the empty string", &[("a", "x"), ("b", "y")],
         "[{source_labels: [a, nope, b], separator: ',', regex: 'x,,y', target_label: hit, replacement: yes}]",
         Some(&[("a", "x"), ("b", "y"), ("hit", "yes")])),
        ("replace: no match, no write", &[("a", "boo")],
         "[{source_labels: [a], regex: f, target_label: b, replacement: bar}]", Some(&[("a", "boo")])),
        ("replace: anchored, `a` does not match `ba`", &[("a", "ba")],
         "[{source_labels: [a], regex: a, target_label: t, replacement: hit}]", Some(&[("a", "ba")])),
        ("replace: anchored alternation", &[("a", "ab")],
         "[{source_labels: [a], regex: 'a|b', target_label: t, replacement: hit}]", Some(&[("a", "ab")])),
        ("replace: static label without sources", &[("a", "1")],
         "[{target_label: env, replacement: prod}]", Some(&[("a", "1"), ("env", "prod")])),
        ("replace: default regex on a missing source deletes the target", &[("t", "old")],
         "[{source_labels: [nope], target_label: t}]", Some(&[])),
        ("replace: empty result deletes", &[("a", "x"), ("b", "y")],
         "[{source_labels: [a], regex: '(x)', target_label: b, replacement: ''}]", Some(&[("a", "x")])),
        ("replace: target from groups", &[("a", "some-name-value")],
         "[{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${1}', replacement: '${2}'}]",
         Some(&[("a", "some-name-value"), ("name", "value")])),
        ("replace: target expands to empty or invalid, no write", &[("a", "some-0-x")],
         "[{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${3}', replacement: '${1}'},
           {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${1}', replacement: '${2}'}]",
         Some(&[("a", "some-0-x")])),
        ("replace: `$1x` is the group named 1x (empty), `${1}x` is not", &[("a", "v")],
         "[{source_labels: [a], regex: '(v)', target_label: p, replacement: '<$1x>'},
           {source_labels: [a], regex: '(v)', target_label: q, replacement: '<${1}x>'}]",
         Some(&[("a", "v"), ("p", "<>"), ("q", "<vx>")])),
        ("replace: `$$`, a lone `$`, `${` unclosed, `$0`, `$01`", &[("a", "v")],
         "[{source_labels: [a], regex: '(v)', target_label: p, replacement: '$$1|$|$-|${1|$0|$01'}]",
         Some(&[("a", "v"), ("p", "$1|$|$-|${1|v|")])),
        ("replace: named groups", &[("addr", "example:9090")],
         r"[{source_labels: [addr], regex: '(?P<host>[^:]+):(?P<port>\d+)', target_label: t, replacement: '$port@${host}'}]",
         Some(&[("addr", "example:9090"), ("t", "9090@example")])),
        ("replace: real-life tag parsing", &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
         "[{source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', target_label: __metrics_path__},
           {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', target_label: job},
           {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', target_label: '${1}', replacement: '${2}'}]",
         Some(&[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"), ("__metrics_path__", "/secret"), ("foo", "bar"), ("job", "some-job")])),
        ("replace: `.` stops at a newline unless (?s)", &[("m", "a\nb")],
         "[{source_labels: [m], target_label: plain}, {source_labels: [m], regex: '(?s)(.*)', target_label: dotall}]",
         Some(&[("dotall", "a\nb"), ("m", "a\nb")])),
        ("keep: Go's \\d is ASCII only", &[("n", "١٢")], r"[{source_labels: [n], regex: '\d+', action: keep}]", None),
        ("keep: Go's \\w is ASCII only", &[("n", "é")], r"[{source_labels: [n], regex: '\w', action: drop}]", Some(&[("n", "é")])),
        ("keep: (?i)", &[("n", "FOO")], "[{source_labels: [n], regex: '(?i)foo', action: keep}]", Some(&[("n", "FOO")])),
        ("keep: Go's `{,2}` is literal text", &[("n", "a{,2}")], "[{source_labels: [n], regex: 'a{,2}', action: keep}]", Some(&[("n", "a{,2}")])),
        ("keep: \\Q...\\E is literal", &[("n", "1x5")], r"[{source_labels: [n], regex: '\Q1.5\E', action: keep}]", None),
        ("keep: `a)|(b` is `^(?:a)|(b)$` in Prometheus", &[("n", "axx")], "[{source_labels: [n], regex: 'a)|(b', action: keep}]", Some(&[("n", "axx")])),
        ("keep: match", &[("a", "foo")], "[{source_labels: [a], regex: 'f.*', action: keep}]", Some(&[("a", "foo")])),
        ("keep: no match drops", &[("a", "foo")], "[{source_labels: [a], regex: no-match, action: keep}]", None),
        ("drop: match drops, later steps do not run", &[("a", "foo")],
         "[{source_labels: [a], regex: '.*o.*', action: drop}, {source_labels: [a], target_label: d}]", None),
        ("drop: partial match is no match", &[("a", "foo")], "[{source_labels: [a], regex: 'f|o', action: drop}]", Some(&[("a", "foo")])),
        ("drop: __name__ is an ordinary label", &[("__name__", "go_gc_seconds"), ("job", "x")],
         "[{source_labels: [__name__], regex: 'go_.*', action: drop}]", None),
        // md5("baz") = 73feffa4b7f6bb68e44cf984c85f6e88: the last 8 bytes
        // as a big-endian u64, mod 1000, are 976 (python3 hashlib), as in
        // Prometheus's own test; md5("foo\nbar") gives 734 the same way.
        ("hashmod", &[("c", "baz")], "[{source_labels: [c], target_label: d, modulus: 1000, action: hashmod}]",
         Some(&[("c", "baz"), ("d", "976")])),
        ("hashmod: newline in the value", &[("a", "foo\nbar")], "[{source_labels: [a], target_label: b, modulus: 1000, action: hashmod}]",
         Some(&[("a", "foo\nbar"), ("b", "734")])),
        // python3: int.from_bytes(md5(b"a;b").digest()[8:], "big") % 7 == 2
        ("hashmod: joined sources", &[("x", "a"), ("y", "b")], "[{source_labels: [x, y], target_label: h, modulus: 7, action: hashmod}]",
         Some(&[("h", "2"), ("x", "a"), ("y", "b")])),
        // python3: md5(b"10.0.0.1:9100") ... % 16 == 13
        ("hashmod: address sharding", &[("__address__", "10.0.0.1:9100")],
         "[{source_labels: [__address__], target_label: __tmp_hash, modulus: 16, action: hashmod}]",
         Some(&[("__address__", "10.0.0.1:9100"), ("__tmp_hash", "13")])),
        ("labelmap", &[("a", "foo"), ("b1", "bar"), ("b2", "baz")], "[{regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}]",
         Some(&[("a", "foo"), ("b1", "bar"), ("b2", "baz"), ("bar_b1", "bar"), ("bar_b2", "baz")])),
        ("labelmap: meta labels with the default replacement", &[("__meta_my_bar", "aaa"), ("__meta_other", "ccc"), ("a", "foo")],
         "[{regex: '__meta_(my.*)', action: labelmap}]",
         Some(&[("__meta_my_bar", "aaa"), ("__meta_other", "ccc"), ("a", "foo"), ("my_bar", "aaa")])),
        ("labelmap: overwrites, and the later name wins", &[("a", "0"), ("x_a", "1"), ("y_a", "2")],
         "[{regex: '[xy]_(.*)', action: labelmap}]", Some(&[("a", "2"), ("x_a", "1"), ("y_a", "2")])),
        ("labeldrop", &[("a", "foo"), ("b1", "bar"), ("b2", "baz")], "[{regex: '(b.*)', action: labeldrop}]", Some(&[("a", "foo")])),
        ("labeldrop: anchored", &[("b", "1"), ("b1", "2")], "[{regex: b, action: labeldrop}]", Some(&[("b1", "2")])),
        ("labelkeep", &[("a", "foo"), ("b1", "bar"), ("b2", "baz")], "[{regex: '(b.*)', action: labelkeep}]",
         Some(&[("b1", "bar"), ("b2", "baz")])),
        ("lowercase and uppercase", &[("foo", "bAr123Foo")],
         "[{source_labels: [foo], target_label: up, action: uppercase}, {source_labels: [foo], target_label: low, action: lowercase}]",
         Some(&[("foo", "bAr123Foo"), ("low", "bar123foo"), ("up", "BAR123FOO")])),
        ("case mapping is Go's simple one", &[("a", "straße ᾳ"), ("b", "İ ΟΔΟΣ")],
         "[{source_labels: [a], target_label: up, action: uppercase}, {source_labels: [b], target_label: low, action: lowercase}]",
         Some(&[("a", "straße ᾳ"), ("b", "İ ΟΔΟΣ"), ("low", "i οδοσ"), ("up", "STRAßE ᾼ")])),
        ("lowercase of nothing deletes the target", &[("t", "old")],
         "[{source_labels: [nope], target_label: t, action: lowercase}]", Some(&[])),
        ("keepequal: equal keeps", &[("__port1", "1234"), ("__tmp_port", "1234")],
         "[{source_labels: [__tmp_port], target_label: __port1, action: keepequal}]", Some(&[("__port1", "1234"), ("__tmp_port", "1234")])),
        ("keepequal: different drops", &[("__port2", "5678"), ("__tmp_port", "1234")],
         "[{source_labels: [__tmp_port], target_label: __port2, action: keepequal}]", None),
        ("keepequal: both missing are equal", &[("a", "1")], "[{source_labels: [x], target_label: y, action: keepequal}]", Some(&[("a", "1")])),
        ("dropequal: equal drops", &[("__port1", "1234"), ("__tmp_port", "1234")],
         "[{source_labels: [__tmp_port], target_label: __port1, action: dropequal}]", None),
        ("dropequal: different keeps", &[("__port2", "5678"), ("__tmp_port", "1234")],
         "[{source_labels: [__tmp_port], target_label: __port2, action: dropequal}]", Some(&[("__port2", "5678"), ("__tmp_port", "1234")])),
        ("Prometheus issue 12283: labeldrop, replace, keep in order",
         &[("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"), ("__meta_kubernetes_pod_container_port_name", "foo")],
         "[{regex: '^__meta_kubernetes_pod_container_port_name$', action: labeldrop},
           {source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port], regex: '(.+)', target_label: __meta_kubernetes_pod_container_port_name, replacement: metrics},
           {source_labels: [__meta_kubernetes_pod_container_port_name], regex: '^metrics$', action: keep}]",
         Some(&[("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"), ("__meta_kubernetes_pod_container_port_name", "metrics")])),
    ];
    assert!(cases.len() >= 35);
    for (name, input, yaml, want) in cases {
        let got = relabel(&Labels::from_pairs(input.iter().copied()), &configs(yaml));
        let want = want.map(|w| Labels::from_pairs(w.iter().copied()));
        assert_eq!(got, want, "case {name:?}");
    }
}

#[test]
fn validation_names_the_field() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        ("{action: hashmod, source_labels: [a], target_label: b}", "requires non-zero modulus"),
        ("{source_labels: [a]}", "replace action requires 'target_label'"),
        ("{action: lowercase, source_labels: [a]}", "lowercase action requires 'target_label'"),
        ("{source_labels: [a], target_label: '0${1}'}", r#""0${1}" is invalid 'target_label' for replace"#),
        ("{source_labels: [a], target_label: 'a-b'}", r#""a-b" is invalid 'target_label' for replace"#),
        ("{action: hashmod, source_labels: [a], target_label: 'b$1', modulus: 2}", "is invalid 'target_label' for hashmod"),
        ("{action: uppercase, source_labels: [a], target_label: x, replacement: y}", "'replacement' can not be set"),
        ("{action: labelmap, regex: a, replacement: '-x'}", r#""-x" is invalid 'replacement' for labelmap"#),
        ("{action: keepequal, source_labels: [a], target_label: b, regex: '(.*)'}", "keepequal action requires only 'source_labels'"),
        ("{action: dropequal, source_labels: [a], target_label: b, modulus: 2}", "dropequal action requires only"),
        ("{action: labeldrop, regex: a, source_labels: [x]}", "labeldrop action requires only 'regex'"),
        ("{action: labelkeep, regex: a, separator: ','}", "labelkeep action requires only 'regex'"),
        ("{source_labels: ['a-b'], target_label: x}", r#""a-b" is not a valid label name in 'source_labels'"#),
    ];
    for (yaml, want) in cases {
        let cfg: RelabelConfig = serde_saphyr::from_str(yaml).unwrap();
        let err = cfg.validate().expect_err(yaml);
        assert!(err.contains(want), "{yaml}: {err}");
    }
    for ok in [
        "{target_label: '${1}_x', source_labels: [a]}",
        "{action: keepequal, source_labels: [a], target_label: b, separator: ';'}",
        "{action: labelmap, regex: 'x_(.*)', source_labels: [a], target_label: b}",
        "{action: Replace, target_label: x}",
    ] {
        let cfg: RelabelConfig = serde_saphyr::from_str(ok).unwrap();
        cfg.validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn parse_errors_and_yaml_nulls() {
    let err = |yaml: &str| {
        serde_saphyr::from_str::<RelabelConfig>(yaml)
            .unwrap_err()
            .to_string()
    };
    assert!(err("{regex: 'x('}").contains(r#"invalid regex "x(": missing closing )"#));
    assert!(err("{action: frob}").contains(r#"unknown relabel action "frob""#));
    assert!(err("{action: }").contains("relabel action cannot be empty"));
    assert!(err("{bogus: 1}").contains("bogus"));
    let cfg: RelabelConfig =
        serde_saphyr::from_str("{separator: , replacement: , regex: , target_label: t}").unwrap();
    assert_eq!((cfg.separator.as_str(), cfg.replacement.as_str()), ("", ""));
    // A null regex is the empty regex: it matches only "".
    assert!(cfg.regex.is_match("") && !cfg.regex.is_match("x"));
    assert_eq!(Regex::new("a.b").unwrap().as_str(), "a.b");
}

#[test]
fn go_regex_syntax() {
    // (pattern, text, whether Go's ^(?:pattern)$ matches). \b is ASCII in
    // Go, so x|é is a boundary and é|end is not.
    #[rustfmt::skip]
    let matches: &[(&str, &str, bool)] = &[
        (r"\bfoo\b", "foo", true), (r"x\bé", "xé", true), (r"é\b", "é", false), (r"\s", "\x0B", false), (r"[\s]", " ", true),
        (r"[\S]", "a", true), (r"[^\d]", "a", true), (r"[[:alpha:]]+", "ab", true), (r"[[:^alpha:]]", "1", true),
        (r"\pL+", "αβ", true), (r"\p{^Greek}", "a", true), (r"\P{^Greek}", "α", true), (r"[\p{Greek}x]+", "αx", true),
        (r"[]a]+", "]a", true), (r"[^]a]", "b", true), (r"[a-]+", "-a", true), (r"[[]", "[", true),
        (r"[a&&b]+", "&ab", true), (r"[a~~b]+", "~ab", true), (r"\<", "<", true), ("x{", "x{", true),
        (r"\x41\x{42}\101", "ABA", true), (r"\0", "\0", true), (r"(?i)K", "\u{212A}", true), (r"(?i:a)A", "aA", true),
        (r"(?)a", "a", true), (r"(?ii-s)a", "A", true), (r"(?m)^b$", "b", true), (r"\Q(\E", "(", true),
        (r"\p{Any}\p{Latin}\pN", "éa1", true), (r"a{2}", "aa", true), (r"a{2,}", "aaa", true), (r"a{1,2}?", "a", true), (r"\.", ".", true),
    ];
    for (pattern, text, want) in matches {
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(re.is_match(text), *want, "{pattern:?} on {text:?}");
    }
    // Go refuses all of these, so Prometheus refuses the config.
    for bad in [
        "(?<n>x)",
        "a**",
        "a*{2}",
        "x{1001}",
        "(a{100}){20}",
        r"\1",
        r"\8",
        r"\C",
        "[z-a]",
        "[[:foo:]]",
        "(?x)a",
        "(?i-)a",
        "[a--b]",
        "x)",
        "(",
        "[a",
        r"\",
        r"\q",
        "*",
        "|*",
        r"(?P<a-b>x)",
        r"\p{sc=Greek}",
        r"\p{greek}",
        r"\p{LC}",
        r"\p{ASCII}",
        "x{2}{3}",
    ] {
        let err = Regex::new(bad).expect_err(bad);
        assert!(
            err.starts_with(&format!("invalid regex {bad:?}: ")),
            "{err}"
        );
    }
    // Nested counts within Go's limit of 1000, and `{0}` hides what it repeats.
    for ok in ["(a{10}){100}", "((a{1000}){0}){2}", "(a{1000})*"] {
        Regex::new(ok).unwrap_or_else(|e| panic!("{e}"));
    }
}
