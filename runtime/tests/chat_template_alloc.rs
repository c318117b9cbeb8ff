//! Fuzz findings of `fuzz/fuzz_targets/chat_template.rs` that are about memory: the largest
//! single allocation made while parsing and rendering a hostile template, measured with a
//! counting global allocator (this test binary's own), must stay far below what a phone has.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use graft_runtime::chat_template::{ChatMessage, ChatTemplate};

/// The system allocator, recording the largest single request.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as for `alloc`; `ptr` and `layout` come from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

/// The fuzzer's limit (`-malloc_limit_mb=64`).
const LIMIT: usize = 64 << 20;

/// Parses and renders `source`; the result does not matter, the largest allocation does.
fn largest_allocation(source: &str) -> usize {
    LARGEST.store(0, Ordering::Relaxed);
    if let Ok(t) = ChatTemplate::new(source, "<s>", "</s>") {
        let _ = t.render(&[ChatMessage::new("user", "Hi")], true);
    }
    LARGEST.load(Ordering::Relaxed)
}

/// fuzz/findings/chat_template/oom-constant-folded-repeat.bin: minijinja folds constant
/// expressions while compiling, so `'x' * 100000000` builds a 100 MB string (minijinja's own cap
/// on one repetition is 100 MB) inside `ChatTemplate::new`, before any fuel, recursion or output
/// bound applies (found by the `chat_template` target after 1.58M executions, as a 75 MB
/// `str::repeat`). Fixed: graft compiles a guarded copy of the template in which `*` is a
/// call to the render budget (`chat_template/guard/`), so nothing is folded and the product is
/// refused before it is built.
#[test]
fn constant_folded_string_repeat_is_bounded_at_parse_time() {
    let got = largest_allocation("{{ 'x' * 100000000 }}");
    assert!(got < LIMIT, "largest allocation {got} bytes");
}

/// The same product at render time (`n` is a variable, so nothing is folded): the render's
/// fuel and output bounds do not see a single 100 MB intermediate string; the render budget
/// does, before the string is built.
#[test]
fn rendered_string_repeat_is_bounded() {
    let got = largest_allocation("{% set n = 100000000 %}{% set s = 'x' * n %}{{ s | length }}");
    assert!(got < LIMIT, "largest allocation {got} bytes");
}

/// A template that stays small allocates little (the allocator hook itself works).
#[test]
fn ordinary_template_allocates_little() {
    let got = largest_allocation(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
    );
    assert!(got > 0 && got < 1 << 20, "largest allocation {got} bytes");
}
