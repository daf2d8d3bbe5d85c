//! Binary operators: arithmetic, comparison (with `bool`), set operators,
//! and vector matching (`on`/`ignoring`, `group_left`/`group_right`), as
//! Prometheus 2.42's `VectorBinop`, `VectorscalarBinop` and friends.

use super::PromqlError;
use super::eval::{Evaluator, Sample, Val, check_unique, drop_name, exec};
use crate::model::Labels;
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use std::collections::{HashMap, HashSet};

fn is_comparison(op: TokenId) -> bool {
    matches!(
        op,
        token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE
    )
}

fn drops_name(op: TokenId) -> bool {
    matches!(
        op,
        token::T_ADD
            | token::T_SUB
            | token::T_MUL
            | token::T_DIV
            | token::T_MOD
            | token::T_POW
            | token::T_ATAN2
    )
}

/// Go's `math.Mod`: the result has the sign of `x`, as Rust's `%`.
fn go_mod(x: f64, y: f64) -> f64 {
    x % y
}

/// (value, keep): comparison operators keep the left value when true.
fn elem(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_MOD => (go_mod(l, r), true),
        token::T_POW => (l.powf(r), true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

fn scalar_op(op: TokenId, l: f64, r: f64) -> f64 {
    let (v, keep) = elem(op, l, r);
    if is_comparison(op) {
        if keep { 1.0 } else { 0.0 }
    } else {
        v
    }
}

pub fn binary(ev: &Evaluator<'_>, b: &BinaryExpr, ts: i64) -> Result<Val, PromqlError> {
    let op = b.op.id();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs, ts)?;
    let rhs = ev.eval(&b.rhs, ts)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(scalar_op(op, l, r))),
        (Val::Vector(l), Val::Scalar(r)) => {
            vector_scalar(op, l, r, false, return_bool, ts).map(Val::Vector)
        }
        (Val::Scalar(l), Val::Vector(r)) => {
            vector_scalar(op, r, l, true, return_bool, ts).map(Val::Vector)
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let (card, matching) = match &b.modifier {
                Some(m) => (m.card.clone(), m.matching.clone()),
                None => (VectorMatchCardinality::OneToOne, None),
            };
            let (on, names): (bool, Vec<String>) = match &matching {
                Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
                Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
                None => (false, Vec::new()),
            };
            let sig = |m: &Labels| signature(m, on, &names);
            let out = match op {
                token::T_LAND => {
                    let right: HashSet<Labels> = r.iter().map(|s| sig(&s.metric)).collect();
                    l.into_iter()
                        .filter(|s| right.contains(&sig(&s.metric)))
                        .collect()
                }
                token::T_LUNLESS => {
                    let right: HashSet<Labels> = r.iter().map(|s| sig(&s.metric)).collect();
                    l.into_iter()
                        .filter(|s| !right.contains(&sig(&s.metric)))
                        .collect()
                }
                token::T_LOR => {
                    let left: HashSet<Labels> = l.iter().map(|s| sig(&s.metric)).collect();
                    let mut out = l;
                    out.extend(r.into_iter().filter(|s| !left.contains(&sig(&s.metric))));
                    out
                }
                // Nothing can match: Prometheus short-circuits before
                // checking for duplicates.
                _ if l.is_empty() || r.is_empty() => Vec::new(),
                _ => vector_vector(op, l, r, &card, on, &names, return_bool)?,
            };
            let out: Vec<Sample> = out
                .into_iter()
                .map(|mut s| {
                    s.t = ts;
                    s
                })
                .collect();
            check_unique(&out)?;
            Ok(Val::Vector(out))
        }
        _ => Err(exec("binary operator on a string or range vector")),
    }
}

fn vector_scalar(
    op: TokenId,
    v: Vec<Sample>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
    ts: i64,
) -> Result<Vec<Sample>, PromqlError> {
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let (l, r) = if swap { (scalar, s.v) } else { (s.v, scalar) };
        let (mut value, mut keep) = elem(op, l, r);
        // A comparison keeps the vector's value even when it is on the right.
        if is_comparison(op) && swap {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            s.v = value;
            s.t = ts;
            if drops_name(op) || return_bool {
                s.metric = drop_name(s.metric);
            }
            out.push(s);
        }
    }
    check_unique(&out)?;
    Ok(out)
}

/// The labels two elements must agree on: only `on(...)` labels, or all
/// but `ignoring(...)` labels and the metric name.
fn signature(m: &Labels, on: bool, names: &[String]) -> Labels {
    if on {
        Labels::from_pairs(m.iter().filter(|(k, _)| names.iter().any(|n| n == k)))
    } else {
        Labels::from_pairs(
            m.iter()
                .filter(|(k, _)| *k != "__name__" && !names.iter().any(|n| n == k)),
        )
    }
}

fn vector_vector(
    op: TokenId,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    card: &VectorMatchCardinality,
    on: bool,
    names: &[String],
    return_bool: bool,
) -> Result<Vec<Sample>, PromqlError> {
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    let include: Vec<String> = match card {
        VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
            l.labels.clone()
        }
        _ => Vec::new(),
    };
    let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut right: HashMap<Labels, Sample> = HashMap::with_capacity(rhs.len());
    for rs in rhs {
        let sig = signature(&rs.metric, on, names);
        if let Some(dup) = right.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(exec(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                go_labels(&sig),
                go_labels(&rs.metric),
                go_labels(&dup.metric)
            )));
        }
        right.insert(sig, rs);
    }
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for ls in lhs {
        let sig = signature(&ls.metric, on, names);
        let Some(rs) = right.get(&sig) else { continue };
        let (mut vl, mut vr) = (ls.v, rs.v);
        if one_to_many {
            std::mem::swap(&mut vl, &mut vr);
        }
        let (mut value, keep) = elem(op, vl, vr);
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut metric = result_metric(&ls.metric, &rs.metric, op, one_to_one, on, names, &include);
        if return_bool {
            metric = drop_name(metric);
        }
        match matched.get_mut(&sig) {
            Some(_) if one_to_one => {
                return Err(exec(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
            Some(set) => {
                if !set.insert(metric.clone()) {
                    return Err(exec(
                        "multiple matches for labels: grouping labels must ensure unique matches",
                    ));
                }
            }
            None => {
                let mut set = HashSet::new();
                if !one_to_one {
                    set.insert(metric.clone());
                }
                matched.insert(sig, set);
            }
        }
        out.push(Sample {
            metric,
            t: ls.t,
            v: value,
        });
    }
    Ok(out)
}

fn result_metric(
    lhs: &Labels,
    rhs: &Labels,
    op: TokenId,
    one_to_one: bool,
    on: bool,
    names: &[String],
    include: &[String],
) -> Labels {
    let mut m = lhs.clone();
    if drops_name(op) {
        m.remove("__name__");
    }
    if one_to_one {
        if on {
            m = Labels::from_pairs(m.iter().filter(|(k, _)| names.iter().any(|n| n == k)));
        } else {
            for n in names {
                m.remove(n);
            }
        }
    }
    for n in include {
        match rhs.get(n) {
            Some(v) => m.set(n.clone(), v),
            None => {
                m.remove(n);
            }
        }
    }
    m
}

pub use crate::gofmt::go_labels;
