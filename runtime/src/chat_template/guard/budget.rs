//! The render budget: the functions the guarded copy of a template calls (see
//! [`super::print`]). Each charges the bytes a value costs against the budget of the render in
//! progress on this thread, before building the value when its size can be known first
//! (concatenation, repetition, `replace`, `join`, `indent`, `tojson`, `format`, ...), or right
//! after for everything else a call returns. The budget counts every byte built, not the bytes
//! alive at once, so it bounds both peak memory and the work of copying.

use std::cell::Cell;
use std::fmt;

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

/// Bytes of text and values one render may build (its output is bounded separately, by
/// `MAX_RENDER_BYTES`). Real chat templates build a few times their output; this is far above
/// that and far below what hurts a phone.
pub const RENDER_BUDGET_BYTES: usize = 64 << 20;

/// What one element of a sequence or map costs (a `Value` is 16 bytes, a map entry two).
const SLOT: usize = 16;

thread_local! {
    /// Bytes left to the render running on this thread; `None` outside a render.
    static LEFT: Cell<Option<usize>> = const { Cell::new(None) };
    /// Set when a render ran out of budget (the error minijinja returns may be wrapped).
    static EXCEEDED: Cell<bool> = const { Cell::new(false) };
}

/// The budget of one render: set on this thread while the value lives.
pub(crate) struct RenderBudget {
    previous: Option<usize>,
}

impl RenderBudget {
    /// Starts a render with [`RENDER_BUDGET_BYTES`].
    pub(crate) fn start() -> RenderBudget {
        EXCEEDED.with(|e| e.set(false));
        RenderBudget {
            previous: LEFT.with(|l| l.replace(Some(RENDER_BUDGET_BYTES))),
        }
    }

    /// Whether the render ran out of budget.
    pub(crate) fn exceeded(&self) -> bool {
        EXCEEDED.with(|e| e.get())
    }
}

impl Drop for RenderBudget {
    fn drop(&mut self) {
        LEFT.with(|l| l.set(self.previous));
    }
}

/// Takes `bytes` from the render's budget, or fails (and remembers that it failed).
fn charge(bytes: usize) -> Result<(), Error> {
    LEFT.with(|l| match l.get() {
        None => Ok(()),
        Some(left) if bytes <= left => {
            l.set(Some(left - bytes));
            Ok(())
        }
        Some(_) => {
            EXCEEDED.with(|e| e.set(true));
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("the template built more than {RENDER_BUDGET_BYTES} bytes"),
            ))
        }
    })
}

/// What is left of the budget (everything outside a render).
fn left() -> usize {
    LEFT.with(|l| l.get()).unwrap_or(usize::MAX)
}

/// A `fmt::Write` that only counts, and fails once past `cap` (so counting is bounded too).
struct Counter {
    n: usize,
    cap: usize,
}

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.n = self.n.saturating_add(s.len());
        if self.n > self.cap {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The length of `v`'s text (`{{ v }}`, `v ~ ..`), or an error once past the budget left.
fn text_len(v: &Value) -> Result<usize, Error> {
    if let Some(s) = v.as_str() {
        return Ok(s.len());
    }
    let mut c = Counter { n: 0, cap: left() };
    match fmt::write(&mut c, format_args!("{v}")) {
        Ok(()) => Ok(c.n),
        Err(_) => charge(usize::MAX).map(|_| usize::MAX),
    }
}

/// What a value a call returned costs: its text for strings, a slot per element for
/// sequences and maps, one slot otherwise.
fn value_cost(v: &Value) -> usize {
    match v.kind() {
        ValueKind::String => v.as_str().map_or(0, str::len),
        ValueKind::Bytes | ValueKind::Seq | ValueKind::Iterable => {
            v.len().unwrap_or(1).saturating_mul(SLOT)
        }
        ValueKind::Map => v.len().unwrap_or(1).saturating_mul(2 * SLOT),
        _ => SLOT,
    }
}

/// `__graft_val(v)`: charges what a call returned; returns it unchanged.
pub(crate) fn val(v: Value) -> Result<Value, Error> {
    charge(value_cost(&v))?;
    Ok(v)
}

/// `__graft_emit(v)`: charges the text `{{ v }}` writes; returns `v` unchanged.
pub(crate) fn emit(v: Value) -> Result<Value, Error> {
    let n = text_len(&v)?;
    charge(n)?;
    Ok(v)
}

/// `__graft_loop(iterable, raw)`: charges the literal text the loop body writes (`raw`) once
/// per item; an iterable of unknown length is gathered into a list first (charged per item).
pub(crate) fn loop_items(it: Value, raw: usize) -> Result<Value, Error> {
    let (items, n) = match (it.kind(), it.len()) {
        (_, Some(n)) => (it, n),
        (ValueKind::Iterable, None) => {
            let mut v = Vec::new();
            for x in it.try_iter()? {
                charge(SLOT)?;
                v.push(x);
            }
            let n = v.len();
            (Value::from(v), n)
        }
        _ => return Ok(it),
    };
    charge(raw.saturating_mul(n))?;
    Ok(items)
}

/// The environment that evaluates `+` and `*` with minijinja's own semantics once checked.
fn ops_env() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(Environment::new)
}

fn is_seq(v: &Value) -> bool {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// `__graft_op(op, a, b)`: `a ~ b`, `a + b` or `a * b`, charged before the result is built.
pub(crate) fn op(op: &str, a: Value, b: Value) -> Result<Value, Error> {
    match op {
        "~" => {
            let n = text_len(&a)?.saturating_add(text_len(&b)?);
            charge(n)?;
            let mut s = String::with_capacity(n);
            fmt::write(&mut s, format_args!("{a}{b}"))
                .map_err(|_| Error::new(ErrorKind::InvalidOperation, "cannot format value"))?;
            return Ok(Value::from(s));
        }
        "+" => {
            if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
                charge(x.len().saturating_add(y.len()))?;
            } else if is_seq(&a) && is_seq(&b) {
                let n = a.len().unwrap_or(1).saturating_add(b.len().unwrap_or(1));
                charge(n.saturating_mul(SLOT))?;
            }
        }
        "*" => {
            let times = |v: &Value| v.as_usize().unwrap_or(0);
            if let Some(s) = a.as_str() {
                charge(s.len().saturating_mul(times(&b)))?;
            } else if let Some(s) = b.as_str() {
                charge(s.len().saturating_mul(times(&a)))?;
            } else if is_seq(&a) {
                charge(
                    a.len()
                        .unwrap_or(1)
                        .saturating_mul(times(&b))
                        .saturating_mul(SLOT),
                )?;
            } else if is_seq(&b) {
                charge(
                    b.len()
                        .unwrap_or(1)
                        .saturating_mul(times(&a))
                        .saturating_mul(SLOT),
                )?;
            }
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("unknown guarded operator {op}"),
            ))
        }
    }
    let expr = ops_env().compile_expression(if op == "+" { "a + b" } else { "a * b" })?;
    expr.eval(minijinja::context! { a => a, b => b })
}

/// A call's arguments as `__graft_pre` got them: positional, then keyword.
struct Args {
    positional: Vec<Value>,
    keyword: Vec<(String, Value)>,
}

impl Args {
    /// The keyword argument `name`, or else the positional argument at `pos`.
    fn get(&self, pos: usize, name: &str) -> Option<Value> {
        self.positional.get(pos).cloned().or_else(|| {
            self.keyword
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    /// A non-negative integer argument (`None` when absent or not an integer).
    fn int(&self, pos: usize, name: &str) -> Option<usize> {
        self.get(pos, name).and_then(|v| v.as_usize())
    }

    /// Every argument's value.
    fn values(&self) -> impl Iterator<Item = &Value> {
        self.positional
            .iter()
            .chain(self.keyword.iter().map(|(_, v)| v))
    }
}

/// An upper bound of the text a printf/`str.format` format string writes: its own length,
/// every number in it (widths and precisions), every argument's text and every integer
/// argument (widths given as `*` or `{:{}}`).
fn format_bound(fmt_text: &str, args: &Args) -> Result<usize, Error> {
    let mut n = fmt_text.len();
    for run in fmt_text.split(|c: char| !c.is_ascii_digit()) {
        if !run.is_empty() {
            n = n.saturating_add(run.parse::<usize>().unwrap_or(usize::MAX));
        }
    }
    for a in args.values() {
        n = n.saturating_add(text_len(a)?);
        if let Some(i) = a.as_usize() {
            n = n.saturating_add(i);
        }
    }
    Ok(n)
}

/// The JSON text of `v` with `indent` spaces, counted without building it (bounded).
fn json_len(v: &Value, indent: usize) -> Result<usize, Error> {
    struct W {
        n: usize,
        cap: usize,
    }
    impl std::io::Write for W {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.n = self.n.saturating_add(b.len());
            if self.n > self.cap {
                return Err(std::io::Error::other("over budget"));
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = W { n: 0, cap: left() };
    let pad = vec![b' '; indent];
    let fmt = serde_json::ser::PrettyFormatter::with_indent(&pad);
    let mut ser = serde_json::Serializer::with_formatter(&mut w, fmt);
    match serde::Serialize::serialize(v, &mut ser) {
        Ok(()) => Ok(w.n),
        Err(_) if w.n > w.cap => charge(usize::MAX).map(|_| usize::MAX),
        // Values JSON cannot hold fail in the filter itself, with its own message.
        Err(_) => Ok(w.n),
    }
}

/// `__graft_pre(subject, name, args..)`: charges the bound of what the filter or method
/// `name` builds from `subject` and `args`; returns `subject` unchanged.
pub(crate) fn pre(
    subject: Value,
    name: String,
    positional: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let mut keyword = Vec::new();
    for k in kwargs.args() {
        // `get` marks each keyword as used: the filter itself checks which it accepts.
        keyword.push((k.to_string(), kwargs.get::<Value>(k)?));
    }
    let args = &Args {
        positional: positional.0,
        keyword,
    };
    let positional = &args.positional;
    let arg = |pos: usize, name: &str| args.get(pos, name);
    let int_arg = |pos: usize, name: &str| args.int(pos, name);
    let bound = match name.as_str() {
        "replace" => {
            let s = subject.to_string();
            let old = arg(0, "old").map(|v| v.to_string()).unwrap_or_default();
            let new = arg(1, "new").map(|v| v.to_string()).unwrap_or_default();
            let hits = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old.as_str()).count()
            };
            let hits = int_arg(2, "count").map_or(hits, |c| c.min(hits));
            s.len()
                .saturating_add(hits.saturating_mul(new.len().saturating_sub(old.len())))
        }
        "join" => {
            // Filter: subject is the sequence; method: subject is the separator.
            let (seq, sep) = if subject.as_str().is_some() && !positional.is_empty() {
                (positional[0].clone(), subject.to_string())
            } else {
                let sep = arg(0, "d").map(|v| v.to_string()).unwrap_or_default();
                (subject.clone(), sep)
            };
            let mut n = 0usize;
            let mut count = 0usize;
            if let Ok(items) = seq.try_iter() {
                for item in items {
                    n = n.saturating_add(text_len(&item)?);
                    count += 1;
                    if n > left() {
                        break;
                    }
                }
            }
            n.saturating_add(count.saturating_mul(sep.len()))
        }
        "indent" => {
            let s = subject.to_string();
            let width = arg(0, "width")
                .map(|w| w.as_usize().unwrap_or_else(|| w.to_string().len()))
                .unwrap_or(4);
            s.len()
                .saturating_add((s.lines().count() + 1).saturating_mul(width))
        }
        "tojson" => {
            let indent = arg(0, "indent")
                .map(|w| w.as_usize().unwrap_or_else(|| w.to_string().len()))
                .unwrap_or(0);
            // Up to 6 bytes per byte: minijinja writes `<`, `>`, `&`, `'` as \u00XX.
            json_len(&subject, indent)?.saturating_mul(6)
        }
        "format" => {
            let f = subject.to_string();
            format_bound(&f, args)?
        }
        "urlencode" => text_len(&subject)?.saturating_mul(3),
        "escape" | "e" => text_len(&subject)?.saturating_mul(6),
        "pprint" => text_len(&subject)?.saturating_mul(8).saturating_add(1024),
        "center" | "ljust" | "rjust" | "zfill" => {
            let width = int_arg(0, "width").unwrap_or(0);
            text_len(&subject)?.max(width)
        }
        "expandtabs" => {
            let size = int_arg(0, "tabsize").unwrap_or(8);
            let s = subject.to_string();
            s.len()
                .saturating_add(s.matches('\t').count().saturating_mul(size))
        }
        "batch" => {
            let n = int_arg(0, "count").unwrap_or(0);
            subject
                .len()
                .unwrap_or(1)
                .saturating_add(n)
                .saturating_mul(SLOT)
        }
        "sum" => {
            let mut n = 0usize;
            if let Ok(items) = subject.try_iter() {
                for item in items {
                    n = n.saturating_add(text_len(&item)?);
                    if n > left() {
                        break;
                    }
                }
            }
            n
        }
        _ => 0,
    };
    charge(bound)?;
    Ok(subject)
}
