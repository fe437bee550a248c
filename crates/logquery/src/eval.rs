//! Filter expressions compiled against row slots, and their evaluation.
//!
//! Compiling resolves every field name to a slot once, when the query is planned, so evaluating
//! an event is a walk over the tree with no name lookups. The comparison rule lives in `value.rs`.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::QueryError;
use crate::ast::{CmpOp, Expr, Field, Literal, Operand, Pattern};
use crate::value::Val;

#[derive(Debug, Clone)]
pub(crate) enum CExpr {
    And(Box<CExpr>, Box<CExpr>),
    Or(Box<CExpr>, Box<CExpr>),
    Not(Box<CExpr>),
    Cmp(COperand, CmpOp, COperand),
    In {
        operand: COperand,
        list: Vec<Val<'static>>,
        negated: bool,
    },
    Like {
        operand: COperand,
        pattern: Pattern,
        negated: bool,
    },
    Present(usize),
    Empty(usize),
}

#[derive(Debug, Clone)]
pub(crate) enum COperand {
    Slot(usize),
    Lit(Val<'static>),
}

pub(crate) fn literal(l: &Literal) -> Val<'static> {
    match l {
        Literal::Str(s) => Val::Str(Cow::Owned(s.clone())),
        Literal::Int(i) => Val::Int(*i),
        Literal::Float(f) => Val::Float(*f),
        Literal::Bool(b) => Val::Bool(*b),
    }
}

/// Compiles `e`, resolving each field name to its slot with `resolve`.
pub(crate) fn compile(
    e: &Expr,
    resolve: &mut impl FnMut(&Field) -> Result<usize, QueryError>,
) -> Result<CExpr, QueryError> {
    let operand = |o: &Operand, resolve: &mut dyn FnMut(&Field) -> Result<usize, QueryError>| {
        Ok::<_, QueryError>(match o {
            Operand::Field(f) => COperand::Slot(resolve(f)?),
            Operand::Literal(l) => COperand::Lit(literal(l)),
        })
    };
    Ok(match e {
        Expr::And(a, b) => CExpr::And(
            Box::new(compile(a, resolve)?),
            Box::new(compile(b, resolve)?),
        ),
        Expr::Or(a, b) => CExpr::Or(
            Box::new(compile(a, resolve)?),
            Box::new(compile(b, resolve)?),
        ),
        Expr::Not(a) => CExpr::Not(Box::new(compile(a, resolve)?)),
        Expr::Compare(l, op, r) => CExpr::Cmp(operand(l, resolve)?, *op, operand(r, resolve)?),
        Expr::In {
            operand: o,
            list,
            negated,
        } => CExpr::In {
            operand: operand(o, resolve)?,
            list: list.iter().map(literal).collect(),
            negated: *negated,
        },
        Expr::Like {
            operand: o,
            pattern,
            negated,
        } => CExpr::Like {
            operand: operand(o, resolve)?,
            pattern: pattern.clone(),
            negated: *negated,
        },
        Expr::IsPresent(f) => CExpr::Present(resolve(f)?),
        Expr::IsEmpty(f) => CExpr::Empty(resolve(f)?),
    })
}

impl COperand {
    fn get<'r, 'a>(&'r self, row: &'r [Val<'a>]) -> &'r Val<'a> {
        match self {
            COperand::Slot(s) => &row[*s],
            COperand::Lit(v) => v,
        }
    }
}

impl CExpr {
    pub fn eval(&self, row: &[Val<'_>]) -> bool {
        match self {
            CExpr::And(a, b) => a.eval(row) && b.eval(row),
            CExpr::Or(a, b) => a.eval(row) || b.eval(row),
            CExpr::Not(a) => !a.eval(row),
            CExpr::Cmp(l, op, r) => {
                let (l, r) = (l.get(row), r.get(row));
                match op {
                    CmpOp::Eq => l.equals(r),
                    CmpOp::Ne => !l.equals(r),
                    CmpOp::Lt => l.compare(r) == Some(Ordering::Less),
                    CmpOp::Le => matches!(l.compare(r), Some(Ordering::Less | Ordering::Equal)),
                    CmpOp::Gt => l.compare(r) == Some(Ordering::Greater),
                    CmpOp::Ge => {
                        matches!(l.compare(r), Some(Ordering::Greater | Ordering::Equal))
                    }
                }
            }
            CExpr::In {
                operand,
                list,
                negated,
            } => {
                let v = operand.get(row);
                list.iter().any(|l| v.equals(l)) != *negated
            }
            CExpr::Like {
                operand,
                pattern,
                negated,
            } => {
                let hit = operand.get(row).text().is_some_and(|t| match pattern {
                    Pattern::Substring(s) => t.contains(s.as_str()),
                    Pattern::Regex(r) => r.is_match(&t),
                });
                hit != *negated
            }
            CExpr::Present(s) => !row[*s].is_null(),
            CExpr::Empty(s) => match &row[*s] {
                Val::Null => true,
                Val::Str(v) => v.is_empty(),
                _ => false,
            },
        }
    }
}
