//! The C API called from Rust (through the rlib): cross-thread cancel, callback stop, busy
//! sessions, handle checks, tokenizer round trip and the last-error message per thread.

mod common;

use common::model_path;
use graft::*;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

struct Handles {
    model: *mut graft_model,
    session: *mut graft_session,
}

// SAFETY: the handles are documented as usable from other threads (the session one call at a
// time, which the tests respect or check).
unsafe impl Send for Handles {}
// SAFETY: as above.
unsafe impl Sync for Handles {}

fn open(n_ctx: u32) -> Handles {
    let path = CString::new(model_path().to_str().expect("UTF-8 path")).expect("no NUL");
    let mut mp = graft_model_params_default();
    mp.threads = 1;
    let mut model = std::ptr::null_mut();
    // SAFETY: valid C string, params and out pointer.
    let st = unsafe { graft_model_open(path.as_ptr(), &mp, &mut model) };
    assert_eq!(st, graft_status::GRAFT_OK, "{}", last_error());
    let mut sp = graft_session_params_default();
    sp.temperature = 0.0;
    sp.n_ctx = n_ctx;
    let mut session = std::ptr::null_mut();
    // SAFETY: live model, valid params and out pointer.
    let st = unsafe { graft_session_create(model, &sp, &mut session) };
    assert_eq!(st, graft_status::GRAFT_OK, "{}", last_error());
    Handles { model, session }
}

impl Drop for Handles {
    fn drop(&mut self) {
        assert_eq!(graft_session_free(self.session), graft_status::GRAFT_OK);
        assert_eq!(graft_model_close(self.model), graft_status::GRAFT_OK);
    }
}

fn last_error() -> String {
    // SAFETY: graft_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(graft_last_error()) }
        .to_string_lossy()
        .into_owned()
}

struct Counter {
    pieces: AtomicUsize,
    text: std::sync::Mutex<String>,
}

unsafe extern "C" fn slow_piece(p: *const c_char, len: usize, user: *mut c_void) -> bool {
    // SAFETY: graft passes `len` valid bytes; `user` is the &Counter given to graft_generate.
    let (bytes, c) = unsafe {
        (
            std::slice::from_raw_parts(p as *const u8, len),
            &*(user as *const Counter),
        )
    };
    c.text
        .lock()
        .expect("lock")
        .push_str(std::str::from_utf8(bytes).expect("pieces are UTF-8"));
    c.pieces.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    true
}

fn generate(
    h: &Handles,
    prompt: &str,
    max: i32,
    user: &Counter,
) -> (graft_status, graft_generation) {
    let prompt = CString::new(prompt).expect("no NUL");
    let mut gp = graft_generate_params_default();
    gp.max_tokens = max;
    let mut g = graft_generation {
        stop_reason: graft_stop_reason::GRAFT_STOP_MAX_TOKENS,
        n_prompt_tokens: 0,
        n_generated: 0,
        prefill_tok_s: 0.0,
        decode_tok_s: 0.0,
    };
    // SAFETY: live session, valid prompt/params/out; the callback matches the signature and
    // `user` outlives the call.
    let st = unsafe {
        graft_generate(
            h.session,
            prompt.as_ptr(),
            &gp,
            Some(slow_piece),
            user as *const Counter as *mut c_void,
            &mut g,
        )
    };
    (st, g)
}

/// A chat-formatted prompt the model answers at length.
const STORY: &str =
    "<|im_start|>user\nWrite a long story about a dragon.<|im_end|>\n<|im_start|>assistant\n";

#[test]
fn cancel_from_another_thread_stops_generation_and_busy_is_reported() {
    let h = open(512);
    let c = Counter {
        pieces: AtomicUsize::new(0),
        text: Default::default(),
    };
    let (st, g) = std::thread::scope(|sc| {
        let gen = sc.spawn(|| generate(&h, STORY, 200, &c));
        while c.pieces.load(Ordering::SeqCst) < 3 && !gen.is_finished() {
            std::thread::sleep(Duration::from_millis(2));
        }
        if gen.is_finished() {
            let (st, g) = gen.join().expect("join");
            panic!(
                "generation ended before 3 pieces: {st:?} {g:?} {} {:?}",
                last_error(),
                c.text
            );
        }
        // The session is busy: a second call from this thread is refused, not raced.
        assert_eq!(graft_session_reset(h.session), graft_status::GRAFT_ERR_BUSY);
        assert!(last_error().contains("in use"), "{}", last_error());
        assert_eq!(graft_session_cancel(h.session), graft_status::GRAFT_OK);
        gen.join().expect("generation thread")
    });
    assert_eq!(st, graft_status::GRAFT_OK, "{}", last_error());
    assert_eq!(g.stop_reason, graft_stop_reason::GRAFT_STOP_CANCELLED);
    let pieces = c.pieces.load(Ordering::SeqCst);
    assert!(
        (3..=5).contains(&pieces),
        "cancel after 3 pieces stopped at {pieces}"
    );
    assert!(g.n_generated < 10, "{} tokens generated", g.n_generated);
    // A stale cancel does not leak into the next generation.
    assert_eq!(graft_session_cancel(h.session), graft_status::GRAFT_OK);
    assert_eq!(graft_session_reset(h.session), graft_status::GRAFT_OK);
    let c2 = Counter {
        pieces: AtomicUsize::new(0),
        text: Default::default(),
    };
    let (st, g) = generate(&h, "Hi", 4, &c2);
    assert_eq!(st, graft_status::GRAFT_OK);
    assert_eq!(g.stop_reason, graft_stop_reason::GRAFT_STOP_MAX_TOKENS);
    assert_eq!(g.n_generated, 4);
}

#[test]
fn tokenize_detokenize_round_trip_and_buffer_sizes() {
    let h = open(64);
    let text = CString::new("Hello, world! Ünïcödé 123").expect("no NUL");
    let mut n = 0usize;
    // SAFETY: live model, valid text, size query with NULL/0 buffer.
    let st = unsafe {
        graft_tokenize(
            h.model,
            text.as_ptr(),
            true,
            true,
            std::ptr::null_mut(),
            0,
            &mut n,
        )
    };
    assert_eq!(st, graft_status::GRAFT_ERR_BUFFER_TOO_SMALL);
    assert!(n > 5);
    let mut ids = vec![0i32; n];
    // SAFETY: buffer of n ids.
    let st = unsafe {
        graft_tokenize(
            h.model,
            text.as_ptr(),
            true,
            true,
            ids.as_mut_ptr(),
            n,
            &mut n,
        )
    };
    assert_eq!(st, graft_status::GRAFT_OK);
    let mut len = 0usize;
    // SAFETY: size query.
    let st = unsafe {
        graft_detokenize(
            h.model,
            ids.as_ptr(),
            n,
            false,
            std::ptr::null_mut(),
            0,
            &mut len,
        )
    };
    assert_eq!(st, graft_status::GRAFT_ERR_BUFFER_TOO_SMALL);
    let mut buf = vec![0u8; len + 1];
    // SAFETY: buffer of len + 1 bytes.
    let st = unsafe {
        graft_detokenize(
            h.model,
            ids.as_ptr(),
            n,
            false,
            buf.as_mut_ptr() as *mut c_char,
            len + 1,
            &mut len,
        )
    };
    assert_eq!(st, graft_status::GRAFT_OK);
    assert_eq!(&buf[..len], text.as_bytes());
    assert_eq!(buf[len], 0);
}

#[test]
fn last_error_is_per_thread() {
    assert_eq!(
        graft_session_reset(std::ptr::null_mut()),
        graft_status::GRAFT_ERR_NULL_ARG
    );
    let here = last_error();
    assert!(here.contains("session"), "{here}");
    let there = std::thread::spawn(|| {
        let fresh = last_error();
        assert_eq!(
            graft_model_close(0x1238usize as *mut graft_model),
            graft_status::GRAFT_ERR_INVALID_HANDLE
        );
        (fresh, last_error())
    })
    .join()
    .expect("thread");
    assert_eq!(there.0, "", "a new thread starts without an error");
    assert!(there.1.contains("graft_model"), "{}", there.1);
    assert_eq!(
        last_error(),
        here,
        "another thread's error leaked into this one"
    );
}

#[test]
fn unknown_device_and_zero_threads_are_invalid_arguments() {
    let path = CString::new(model_path().to_str().expect("UTF-8 path")).expect("no NUL");
    let mut mp = graft_model_params_default();
    assert_eq!(mp.device, graft_device::GRAFT_DEVICE_CPU as u32);
    mp.device = 99;
    let mut model = std::ptr::dangling_mut::<graft_model>();
    // SAFETY: valid C string, params and out pointer.
    let st = unsafe { graft_model_open(path.as_ptr(), &mp, &mut model) };
    assert_eq!(st, graft_status::GRAFT_ERR_INVALID_ARG);
    assert!(model.is_null(), "out is set to NULL on error");
    let e = last_error();
    assert!(
        e.contains("device = 99") && e.contains("GRAFT_DEVICE_CPU"),
        "{e}"
    );
    mp.device = graft_device::GRAFT_DEVICE_CPU as u32;
    mp.threads = 0;
    // SAFETY: as above.
    let st = unsafe { graft_model_open(path.as_ptr(), &mp, &mut model) };
    assert_eq!(st, graft_status::GRAFT_ERR_INVALID_ARG);
    assert!(last_error().contains("threads"), "{}", last_error());
}
