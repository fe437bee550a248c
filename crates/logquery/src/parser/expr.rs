//! Filter expressions: `or` binds loosest, then `and`, then `not`; comparisons, `in`, `like`,
//! `=~` and the functions `ispresent` and `isempty` are the primaries.

use super::Parser;
use crate::QueryError;
use crate::ast::{CmpOp, Expr, Literal, Operand, Pattern};
use crate::lexer::Tok;

impl Parser<'_> {
    pub(super) fn expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and_expr()?;
        while self.eat_word("or") {
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.unary()?;
        while self.eat_word("and") {
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.eat_word("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        if self.eat(Tok::LParen) {
            let e = self.expr()?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(e);
        }
        if self.at(Tok::Ident) && self.peek_kind_at(1) == Tok::LParen {
            let name = self.bump();
            self.bump(); // (
            let make: fn(_) -> Expr = match name.text.to_ascii_lowercase().as_str() {
                "ispresent" => Expr::IsPresent,
                "isempty" => Expr::IsEmpty,
                _ => {
                    return Err(self.error_at(
                        name.start,
                        format!(
                            "unknown function '{}' in a filter; expected ispresent or isempty",
                            name.text
                        ),
                    ));
                }
            };
            let field = self.field("a field name")?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(make(field));
        }
        let operand = self.operand()?;
        self.comparison(operand)
    }

    fn comparison(&mut self, operand: Operand) -> Result<Expr, QueryError> {
        let op = match self.peek().kind {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let right = self.operand()?;
            return Ok(Expr::Compare(operand, op, right));
        }
        if self.at(Tok::Match) {
            self.bump();
            let t = self.expect(Tok::Regex, "a /regular expression/ after '=~'")?;
            let pattern = Pattern::Regex(self.compile_regex(&t)?);
            return Ok(Expr::Like {
                operand,
                pattern,
                negated: false,
            });
        }
        let negated = self.at_word("not")
            && (self.toks.get(self.pos + 1)).is_some_and(|t| t.is_word("in") || t.is_word("like"));
        if negated {
            self.bump();
        }
        if self.eat_word("in") {
            let list = self.literal_list()?;
            return Ok(Expr::In {
                operand,
                list,
                negated,
            });
        }
        if self.eat_word("like") {
            let t = self.bump();
            let pattern = match t.kind {
                Tok::Str => Pattern::Substring(t.text),
                Tok::Regex => Pattern::Regex(self.compile_regex(&t)?),
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("a \"substring\" or a /regular expression/"));
                }
            };
            return Ok(Expr::Like {
                operand,
                pattern,
                negated,
            });
        }
        Err(self.unexpected("a comparison (=, !=, <, <=, >, >=, in, like, =~)"))
    }

    fn operand(&mut self) -> Result<Operand, QueryError> {
        if let Some(lit) = self.literal()? {
            return Ok(Operand::Literal(lit));
        }
        self.field("a field name or a value").map(Operand::Field)
    }

    /// A string, number or boolean literal, or `None` when the next token is none of these.
    fn literal(&mut self) -> Result<Option<Literal>, QueryError> {
        let t = self.peek();
        let lit = match t.kind {
            Tok::Str => Literal::Str(t.text.clone()),
            Tok::Number => match t.text.parse::<i64>() {
                Ok(i) => Literal::Int(i),
                Err(_) => match t.text.parse::<f64>() {
                    Ok(f) if f.is_finite() => Literal::Float(f),
                    _ => return Err(self.error_here("number out of range")),
                },
            },
            Tok::Ident if t.is_word("true") => Literal::Bool(true),
            Tok::Ident if t.is_word("false") => Literal::Bool(false),
            Tok::Duration => {
                return Err(self.error_here(format!(
                    "'{}' is not a number; durations are only allowed in bin()",
                    t.text
                )));
            }
            _ => return Ok(None),
        };
        self.bump();
        Ok(Some(lit))
    }

    fn literal_list(&mut self) -> Result<Vec<Literal>, QueryError> {
        self.expect(Tok::LBracket, "'[' to start a list of values")?;
        let mut list = Vec::new();
        if self.eat(Tok::RBracket) {
            return Ok(list);
        }
        loop {
            match self.literal()? {
                Some(lit) => list.push(lit),
                None => return Err(self.unexpected("a string, number or boolean")),
            }
            if self.eat(Tok::RBracket) {
                return Ok(list);
            }
            self.expect(Tok::Comma, "',' or ']'")?;
        }
    }
}
