//! The guarded copy of a template: its syntax tree (minijinja's own parser) printed back as a
//! template that renders the same text, with every place that can make memory grow routed
//! through the budget functions of [`super::budget`]:
//!
//! - `a ~ b`, `a + b`, `a * b` become `__graft_op("~", a, b)` (checked before the result is
//!   built);
//! - every filter, function, method and macro call is wrapped in `__graft_val(..)` (its result
//!   is charged); the filters and methods whose one call can build far more than it is given
//!   (`replace`, `join`, `indent`, `tojson`, `format`, ...) first pass their subject and
//!   arguments through `__graft_pre(subject, "name", args..)`, which charges the bound of
//!   the result before it is built;
//! - `{{ x }}` becomes `{{ __graft_emit(x) }}` (what is written into a captured block,
//!   a macro's output or `{% set %}..{% endset %}` is charged);
//! - a loop's iterable becomes `__graft_loop(iterable, R)`, R the literal text its body writes
//!   per iteration, charged times the number of iterations.
//!
//! The original is parsed with the chat-template syntax (`trim_blocks`, `lstrip_blocks`), so
//! the literal text in the tree is already what renders; the copy is compiled with no
//! whitespace rules at all (and the trailing newline kept), every tag printed bare.
//! Everything is parenthesised, so precedence never changes. Constructs a chat template has no
//! use for and that could load other templates (`include`, `extends`, `import`, `block`) are
//! refused.

use std::fmt::Write;

use minijinja::machinery::ast::{self, BinOpKind, CallArg, CompareOpKind, Expr, Stmt, UnaryOpKind};
use minijinja::value::{Value, ValueKind};

/// Filters and methods whose result can be much larger than their inputs: their bound is
/// charged by `__graft_pre` before they run.
pub(crate) const AMPLIFIERS: &[&str] = &[
    "replace",
    "join",
    "indent",
    "tojson",
    "format",
    "urlencode",
    "escape",
    "e",
    "pprint",
    "center",
    "ljust",
    "rjust",
    "zfill",
    "expandtabs",
    "batch",
    "sum",
];

/// Filters allowed on `{% filter %}` blocks (their output is never larger than the block's).
const BLOCK_FILTERS: &[&str] = &[
    "upper",
    "lower",
    "trim",
    "title",
    "capitalize",
    "safe",
    "striptags",
];

/// Prints `tree` (the root of a parsed template) as the guarded template.
pub(crate) fn guarded(tree: &Stmt<'_>) -> Result<String, String> {
    let mut p = Printer { out: String::new() };
    p.stmt(tree)?;
    Ok(p.out)
}

struct Printer {
    out: String,
}

/// `s` as a template string literal that the lexer reads back as exactly `s`.
fn string_literal(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Literal text written by `body` itself on one run through it: raw text and the bodies of
/// ifs, withs, sets and filter blocks, not nested loops (they charge their own) nor macro
/// definitions (charged when called).
pub(crate) fn raw_bytes(body: &[Stmt<'_>]) -> usize {
    body.iter()
        .map(|s| match s {
            Stmt::EmitRaw(r) => r.raw.len(),
            Stmt::IfCond(c) => raw_bytes(&c.true_body) + raw_bytes(&c.false_body),
            Stmt::WithBlock(w) => raw_bytes(&w.body),
            Stmt::SetBlock(b) => raw_bytes(&b.body),
            Stmt::AutoEscape(a) => raw_bytes(&a.body),
            Stmt::FilterBlock(f) => raw_bytes(&f.body),
            // A loop's else body runs at most once per run of the loop statement.
            Stmt::ForLoop(f) => raw_bytes(&f.else_body),
            _ => 0,
        })
        .fold(0usize, usize::saturating_add)
}

impl Printer {
    fn body(&mut self, stmts: &[Stmt<'_>]) -> Result<(), String> {
        stmts.iter().try_for_each(|s| self.stmt(s))
    }

    fn stmt(&mut self, s: &Stmt<'_>) -> Result<(), String> {
        match s {
            Stmt::Template(t) => self.body(&t.children)?,
            Stmt::EmitExpr(e) => {
                self.out.push_str("{{ __graft_emit(");
                self.expr(&e.expr)?;
                self.out.push_str(") }}");
            }
            Stmt::EmitRaw(r) => {
                // Text that could read as a tag, or that ends in `{` (the next tag would make
                // `{{%`), is written as a string constant.
                if r.raw.contains("{{")
                    || r.raw.contains("{%")
                    || r.raw.contains("{#")
                    || r.raw.ends_with('{')
                {
                    self.out.push_str("{{ ");
                    string_literal(r.raw, &mut self.out);
                    self.out.push_str(" }}");
                } else {
                    self.out.push_str(r.raw);
                }
            }
            Stmt::ForLoop(f) => {
                self.out.push_str("{% for ");
                self.target(&f.target)?;
                self.out.push_str(" in __graft_loop(");
                self.expr(&f.iter)?;
                let _ = write!(self.out, ", {})", raw_bytes(&f.body));
                if let Some(filter) = &f.filter_expr {
                    self.out.push_str(" if ");
                    self.expr(filter)?;
                }
                if f.recursive {
                    self.out.push_str(" recursive");
                }
                self.out.push_str(" %}");
                self.body(&f.body)?;
                if !f.else_body.is_empty() {
                    self.out.push_str("{% else %}");
                    self.body(&f.else_body)?;
                }
                self.out.push_str("{% endfor %}");
            }
            Stmt::IfCond(c) => {
                self.out.push_str("{% if ");
                self.expr(&c.expr)?;
                self.out.push_str(" %}");
                self.body(&c.true_body)?;
                if !c.false_body.is_empty() {
                    self.out.push_str("{% else %}");
                    self.body(&c.false_body)?;
                }
                self.out.push_str("{% endif %}");
            }
            Stmt::WithBlock(w) => {
                self.out.push_str("{% with ");
                for (i, (target, value)) in w.assignments.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.target(target)?;
                    self.out.push_str(" = ");
                    self.expr(value)?;
                }
                self.out.push_str(" %}");
                self.body(&w.body)?;
                self.out.push_str("{% endwith %}");
            }
            Stmt::Set(set) => {
                self.out.push_str("{% set ");
                self.target(&set.target)?;
                self.out.push_str(" = ");
                self.expr(&set.expr)?;
                self.out.push_str(" %}");
            }
            Stmt::SetBlock(b) => {
                self.out.push_str("{% set ");
                self.target(&b.target)?;
                if let Some(filter) = &b.filter {
                    self.out.push_str(" | ");
                    self.block_filter(filter)?;
                }
                self.out.push_str(" %}");
                self.body(&b.body)?;
                self.out.push_str("{% endset %}");
            }
            Stmt::AutoEscape(a) => {
                self.out.push_str("{% autoescape ");
                self.expr(&a.enabled)?;
                self.out.push_str(" %}");
                self.body(&a.body)?;
                self.out.push_str("{% endautoescape %}");
            }
            Stmt::FilterBlock(f) => {
                self.out.push_str("{% filter ");
                self.block_filter(&f.filter)?;
                self.out.push_str(" %}");
                self.body(&f.body)?;
                self.out.push_str("{% endfilter %}");
            }
            Stmt::Macro(m) => {
                self.out.push_str("{% macro ");
                self.out.push_str(m.name);
                self.macro_args(m)?;
                self.out.push_str(" %}");
                self.body(&m.body)?;
                self.out.push_str("{% endmacro %}");
            }
            Stmt::CallBlock(c) => {
                self.out.push_str("{% call");
                self.macro_args(&c.macro_decl)?;
                self.out.push(' ');
                self.call(&c.call, false)?;
                self.out.push_str(" %}");
                self.body(&c.macro_decl.body)?;
                self.out.push_str("{% endcall %}");
            }
            Stmt::Continue(_) => self.out.push_str("{% continue %}"),
            Stmt::Break(_) => self.out.push_str("{% break %}"),
            Stmt::Do(d) => {
                self.out.push_str("{% do ");
                self.call(&d.call, true)?;
                self.out.push_str(" %}");
            }
            Stmt::Block(_)
            | Stmt::Extends(_)
            | Stmt::Include(_)
            | Stmt::Import(_)
            | Stmt::FromImport(_) => {
                return Err(
                    "it uses block/extends/include/import, which chat templates cannot use \
                     (there are no other templates to load)"
                        .into(),
                )
            }
        }
        Ok(())
    }

    /// `(a, b = 1, ...)` of a macro or call block declaration.
    fn macro_args(&mut self, m: &ast::Macro<'_>) -> Result<(), String> {
        self.out.push('(');
        let first_default = m.args.len() - m.defaults.len().min(m.args.len());
        for (i, arg) in m.args.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.target(arg)?;
            if i >= first_default {
                self.out.push_str(" = ");
                self.expr(&m.defaults[i - first_default])?;
            }
        }
        self.out.push(')');
        Ok(())
    }

    /// An assignment target: a name, `ns.attr`, or names to unpack (no parentheses).
    fn target(&mut self, e: &Expr<'_>) -> Result<(), String> {
        match e {
            Expr::Var(v) => self.out.push_str(v.id),
            Expr::GetAttr(g) => {
                self.target(&g.expr)?;
                self.out.push('.');
                self.out.push_str(g.name);
            }
            Expr::List(l) => self.targets(&l.items)?,
            Expr::Tuple(t) => self.targets(&t.items)?,
            _ => return Err("an assignment target graft does not know".into()),
        }
        Ok(())
    }

    fn targets(&mut self, items: &[Expr<'_>]) -> Result<(), String> {
        self.out.push('(');
        for (i, t) in items.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.target(t)?;
        }
        if items.len() == 1 {
            self.out.push(',');
        }
        self.out.push(')');
        Ok(())
    }

    /// The filter chain of a `{% filter %}` block or `{% set x | f %}` (innermost has no
    /// subject): only filters that never grow their input.
    fn block_filter(&mut self, e: &Expr<'_>) -> Result<(), String> {
        match e {
            Expr::Filter(f) if BLOCK_FILTERS.contains(&f.name) => {
                if let Some(inner) = &f.expr {
                    self.block_filter(inner)?;
                    self.out.push('|');
                }
                self.out.push_str(f.name);
                self.call_args(&f.args)
            }
            Expr::Filter(f) => Err(format!(
                "it applies the filter `{}` to a block, which graft does not allow in chat \
                 templates (allowed: {})",
                f.name,
                BLOCK_FILTERS.join(", ")
            )),
            _ => Err("a block filter graft does not know".into()),
        }
    }

    fn call_args(&mut self, args: &[CallArg<'_>]) -> Result<(), String> {
        self.out.push('(');
        self.args_inner(args)?;
        self.out.push(')');
        Ok(())
    }

    fn args_inner(&mut self, args: &[CallArg<'_>]) -> Result<(), String> {
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            match a {
                CallArg::Pos(e) => self.expr(e)?,
                CallArg::Kwarg(name, e) => {
                    self.out.push_str(name);
                    self.out.push('=');
                    self.expr(e)?;
                }
                CallArg::PosSplat(e) => {
                    self.out.push('*');
                    self.expr(e)?;
                }
                CallArg::KwargSplat(e) => {
                    self.out.push_str("**");
                    self.expr(e)?;
                }
            }
        }
        Ok(())
    }

    /// `__graft_pre(subject, "name", args..)`: charges the bound of an amplifying call.
    fn pre(&mut self, subject: &Expr<'_>, name: &str, args: &[CallArg<'_>]) -> Result<(), String> {
        self.out.push_str("__graft_pre(");
        self.expr(subject)?;
        self.out.push_str(", ");
        string_literal(name, &mut self.out);
        if !args.is_empty() {
            self.out.push_str(", ");
            self.args_inner(args)?;
        }
        self.out.push(')');
        Ok(())
    }

    /// A call, wrapped in `__graft_val` when `charge` (a call block's head and `do` cannot be).
    fn call(&mut self, c: &ast::Call<'_>, charge: bool) -> Result<(), String> {
        if charge {
            self.out.push_str("__graft_val(");
        }
        match &c.expr {
            // A method call: the subject passes __graft_pre first when the method amplifies.
            Expr::GetAttr(g) if AMPLIFIERS.contains(&g.name) => {
                self.out.push('(');
                self.pre(&g.expr, g.name, &c.args)?;
                self.out.push_str(").");
                self.out.push_str(g.name);
            }
            callee => self.expr(callee)?,
        }
        self.call_args(&c.args)?;
        if charge {
            self.out.push(')');
        }
        Ok(())
    }

    fn expr(&mut self, e: &Expr<'_>) -> Result<(), String> {
        match e {
            Expr::Var(v) => self.out.push_str(v.id),
            Expr::Const(c) => self.constant(&c.value)?,
            Expr::Slice(s) => {
                self.out.push_str("__graft_val((");
                self.expr(&s.expr)?;
                self.out.push_str(")[");
                if let Some(x) = &s.start {
                    self.expr(x)?;
                }
                self.out.push(':');
                if let Some(x) = &s.stop {
                    self.expr(x)?;
                }
                if let Some(x) = &s.step {
                    self.out.push(':');
                    self.expr(x)?;
                }
                self.out.push_str("])");
            }
            Expr::UnaryOp(u) => {
                self.out.push_str(match u.op {
                    UnaryOpKind::Not => "(not ",
                    UnaryOpKind::Neg => "(-",
                });
                self.expr(&u.expr)?;
                self.out.push(')');
            }
            Expr::BinOp(b) => {
                let guarded = match b.op {
                    BinOpKind::Concat => Some("~"),
                    BinOpKind::Add => Some("+"),
                    BinOpKind::Mul => Some("*"),
                    _ => None,
                };
                if let Some(op) = guarded {
                    self.out.push_str("__graft_op(");
                    string_literal(op, &mut self.out);
                    self.out.push_str(", ");
                    self.expr(&b.left)?;
                    self.out.push_str(", ");
                    self.expr(&b.right)?;
                    self.out.push(')');
                } else {
                    self.out.push('(');
                    self.expr(&b.left)?;
                    self.out.push_str(binop(&b.op));
                    self.expr(&b.right)?;
                    self.out.push(')');
                }
            }
            Expr::Compare(c) => {
                self.out.push('(');
                self.expr(&c.expr)?;
                for op in &c.ops {
                    self.out.push_str(compare_op(&op.op));
                    self.expr(&op.expr)?;
                }
                self.out.push(')');
            }
            Expr::IfExpr(i) => {
                self.out.push('(');
                self.expr(&i.true_expr)?;
                self.out.push_str(" if ");
                self.expr(&i.test_expr)?;
                if let Some(f) = &i.false_expr {
                    self.out.push_str(" else ");
                    self.expr(f)?;
                }
                self.out.push(')');
            }
            Expr::Filter(f) => {
                let Some(subject) = &f.expr else {
                    return Err("a filter without a subject outside a filter block".into());
                };
                self.out.push_str("__graft_val((");
                if AMPLIFIERS.contains(&f.name) {
                    self.pre(subject, f.name, &f.args)?;
                } else {
                    self.expr(subject)?;
                }
                self.out.push_str(")|");
                self.out.push_str(f.name);
                self.call_args(&f.args)?;
                self.out.push(')');
            }
            Expr::Test(t) => {
                self.out.push_str("((");
                self.expr(&t.expr)?;
                self.out.push_str(") is ");
                self.out.push_str(t.name);
                if !t.args.is_empty() {
                    self.call_args(&t.args)?;
                }
                self.out.push(')');
            }
            Expr::GetAttr(g) => {
                self.out.push('(');
                self.expr(&g.expr)?;
                self.out.push_str(").");
                self.out.push_str(g.name);
            }
            Expr::GetItem(g) => {
                self.out.push('(');
                self.expr(&g.expr)?;
                self.out.push_str(")[");
                self.expr(&g.subscript_expr)?;
                self.out.push(']');
            }
            Expr::Call(c) => self.call(c, true)?,
            Expr::List(l) => {
                self.out.push('[');
                self.items(&l.items)?;
                self.out.push(']');
            }
            Expr::Tuple(t) => {
                self.out.push('(');
                self.items(&t.items)?;
                if t.items.len() == 1 {
                    self.out.push(',');
                }
                self.out.push(')');
            }
            Expr::Map(m) => {
                self.out.push('{');
                for (i, (k, v)) in m.keys.iter().zip(&m.values).enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.expr(k)?;
                    self.out.push_str(": ");
                    self.expr(v)?;
                }
                self.out.push('}');
            }
        }
        Ok(())
    }

    fn items(&mut self, items: &[Expr<'_>]) -> Result<(), String> {
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.expr(x)?;
        }
        Ok(())
    }

    fn constant(&mut self, v: &Value) -> Result<(), String> {
        match v.kind() {
            ValueKind::String => string_literal(v.as_str().unwrap_or_default(), &mut self.out),
            ValueKind::None => self.out.push_str("none"),
            ValueKind::Undefined => self.out.push_str("__graft_undefined"),
            ValueKind::Bool => self
                .out
                .push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number => {
                let text = v.to_string();
                if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                    // An integer of any width: its digits.
                    self.out.push_str(&text);
                } else {
                    // A float: Rust's shortest round trip; infinities and NaN have no literal.
                    match f64::try_from(v.clone()) {
                        Ok(f) if f.is_finite() => {
                            let _ = write!(self.out, "{f:?}");
                        }
                        _ => {
                            return Err(format!("a number constant graft cannot print back ({v})"))
                        }
                    }
                }
            }
            _ => return Err(format!("a constant graft cannot print back ({v})")),
        }
        Ok(())
    }
}

fn binop(op: &BinOpKind) -> &'static str {
    match op {
        BinOpKind::Eq => " == ",
        BinOpKind::Ne => " != ",
        BinOpKind::Lt => " < ",
        BinOpKind::Lte => " <= ",
        BinOpKind::Gt => " > ",
        BinOpKind::Gte => " >= ",
        BinOpKind::ScAnd => " and ",
        BinOpKind::ScOr => " or ",
        BinOpKind::Add => " + ",
        BinOpKind::Sub => " - ",
        BinOpKind::Mul => " * ",
        BinOpKind::Div => " / ",
        BinOpKind::FloorDiv => " // ",
        BinOpKind::Rem => " % ",
        BinOpKind::Pow => " ** ",
        BinOpKind::Concat => " ~ ",
        BinOpKind::In => " in ",
    }
}

fn compare_op(op: &CompareOpKind) -> &'static str {
    match op {
        CompareOpKind::Eq => " == ",
        CompareOpKind::Ne => " != ",
        CompareOpKind::Lt => " < ",
        CompareOpKind::Lte => " <= ",
        CompareOpKind::Gt => " > ",
        CompareOpKind::Gte => " >= ",
        CompareOpKind::In => " in ",
        CompareOpKind::NotIn => " not in ",
    }
}
