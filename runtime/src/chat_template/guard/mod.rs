//! Untrusted templates, bounded in memory: a template is not rendered as written but as a
//! guarded copy ([`guard`]) that charges every value it builds against a per-render budget
//! ([`budget::RENDER_BUDGET_BYTES`]). minijinja bounds instructions (fuel) and nesting; the
//! budget bounds what a few instructions can allocate (`s ~ s` doubling in a loop,
//! `'x' * 10**8`, `replace`, `indent(10**9)`, captured blocks, macro output).

pub(crate) mod budget;
mod print;

use minijinja::machinery::parse;
use minijinja::syntax::SyntaxConfig;
use minijinja::Environment;

/// Why a template cannot be guarded.
#[derive(Debug)]
pub(crate) enum GuardError {
    /// It does not parse.
    Syntax(minijinja::Error),
    /// It uses something a chat template may not (named in the text).
    Unsupported(String),
}

/// The guarded copy of `source`, parsed with `syntax` (the chat-template whitespace rules):
/// render it with [`guarded_syntax`] in an environment set up by [`install`].
pub(crate) fn guard(source: &str, syntax: SyntaxConfig) -> Result<String, GuardError> {
    let tree = parse(source, "chat", syntax).map_err(GuardError::Syntax)?;
    print::guarded(&tree).map_err(GuardError::Unsupported)
}

/// The syntax the guarded copy is compiled with: no whitespace rules (the copy's literal text
/// is already what renders) and the trailing newline kept (the original's was already
/// handled when it was parsed).
pub(crate) fn guarded_syntax() -> Result<SyntaxConfig, minijinja::Error> {
    SyntaxConfig::builder().keep_trailing_newline(true).build()
}

/// Adds the budget functions the guarded copy calls.
pub(crate) fn install(env: &mut Environment<'_>) {
    env.add_function("__graft_val", budget::val);
    env.add_function("__graft_emit", budget::emit);
    env.add_function("__graft_loop", budget::loop_items);
    env.add_function("__graft_op", budget::op);
    env.add_function("__graft_pre", budget::pre);
}
