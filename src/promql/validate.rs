//! The supported subset, checked once at parse time.

use super::PromqlError;
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{BinModifier, Expr};

/// Functions kubegate evaluates; any other fails at parse time.
pub const SUPPORTED_FUNCTIONS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "changes",
    "resets",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "present_over_time",
    "absent",
    "absent_over_time",
    "abs",
    "ceil",
    "floor",
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "sqrt",
    "exp",
    "ln",
    "log2",
    "log10",
    "histogram_quantile",
    "label_replace",
    "label_join",
    "time",
    "timestamp",
    "vector",
    "scalar",
    "sort",
    "sort_desc",
];

pub const SUPPORTED_AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "quantile",
    "count_values",
    "topk",
    "bottomk",
];

const BINARY_OPS: &[TokenId] = &[
    token::T_ADD,
    token::T_SUB,
    token::T_MUL,
    token::T_DIV,
    token::T_MOD,
    token::T_POW,
    token::T_ATAN2,
    token::T_EQLC,
    token::T_NEQ,
    token::T_GTR,
    token::T_LSS,
    token::T_GTE,
    token::T_LTE,
    token::T_LAND,
    token::T_LOR,
    token::T_LUNLESS,
];

fn unsupported(what: impl Into<String>) -> PromqlError {
    PromqlError::Unsupported(what.into())
}

pub fn check(e: &Expr) -> Result<(), PromqlError> {
    match e {
        Expr::Aggregate(a) => {
            let name = a.op.to_string();
            if !SUPPORTED_AGGREGATIONS.contains(&name.as_str()) {
                return Err(unsupported(format!("aggregation {name}")));
            }
            if let Some(p) = &a.param {
                check(p)?;
            }
            check(&a.expr)
        }
        Expr::Unary(u) => check(&u.expr),
        Expr::Binary(b) => {
            if !BINARY_OPS.contains(&b.op.id()) {
                return Err(unsupported(format!("binary operator {}", b.op)));
            }
            if let Some(BinModifier { fill_values, .. }) = &b.modifier
                && (fill_values.lhs.is_some() || fill_values.rhs.is_some())
            {
                return Err(unsupported("fill modifiers of binary operators"));
            }
            check(&b.lhs)?;
            check(&b.rhs)
        }
        Expr::Paren(p) => check(&p.expr),
        Expr::Subquery(s) => check(&s.expr),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => {
            if !vs.matchers.or_matchers.is_empty() {
                return Err(unsupported("\"or\" inside label matchers"));
            }
            Ok(())
        }
        Expr::MatrixSelector(ms) => {
            if !ms.vs.matchers.or_matchers.is_empty() {
                return Err(unsupported("\"or\" inside label matchers"));
            }
            Ok(())
        }
        Expr::Call(c) => {
            if !SUPPORTED_FUNCTIONS.contains(&c.func.name) {
                return Err(unsupported(format!("function {}", c.func.name)));
            }
            for a in &c.args.args {
                check(a)?;
            }
            Ok(())
        }
        Expr::Extension(_) => Err(unsupported("extension expressions")),
    }
}
