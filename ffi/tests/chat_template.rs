//! `graft_model_set_chat_template` (the C side of `--chat-template NAME|FILE`): a built-in name
//! changes what `graft_chat_apply` renders, a bad choice is `GRAFT_ERR_TEMPLATE` and keeps the
//! previous one, NULL goes back to the model's own template.

mod common;

use common::model_path;
use graft::*;
use std::ffi::{c_char, CStr, CString};

fn last_error() -> String {
    // SAFETY: graft_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(graft_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// `graft_chat_apply` of system + user messages, with the generation prompt.
fn apply(model: *mut graft_model) -> String {
    match try_apply(model) {
        Ok(s) => s,
        Err(st) => panic!("{st:?}: {}", last_error()),
    }
}

/// [`apply`], returning the status on failure.
fn try_apply(model: *mut graft_model) -> Result<String, graft_status> {
    let role_s = CString::new("system").expect("no NUL");
    let sys = CString::new("Be terse.").expect("no NUL");
    let role_u = CString::new("user").expect("no NUL");
    let user = CString::new("Hi").expect("no NUL");
    let msgs = [
        graft_chat_message {
            role: role_s.as_ptr(),
            content: sys.as_ptr(),
        },
        graft_chat_message {
            role: role_u.as_ptr(),
            content: user.as_ptr(),
        },
    ];
    let mut buf = vec![0u8; 1024];
    let mut len = 0usize;
    // SAFETY: live model, two valid messages, a buffer of buf.len() bytes, a valid len.
    let st = unsafe {
        graft_chat_apply(
            model,
            msgs.as_ptr(),
            msgs.len(),
            true,
            false,
            buf.as_mut_ptr().cast::<c_char>(),
            buf.len(),
            &mut len,
        )
    };
    if st != graft_status::GRAFT_OK {
        return Err(st);
    }
    Ok(String::from_utf8(buf[..len].to_vec()).expect("UTF-8 prompt"))
}

fn set(model: *mut graft_model, template: Option<&str>) -> graft_status {
    let c = template.map(|t| CString::new(t).expect("no NUL"));
    // SAFETY: live model, NULL or a valid C string.
    unsafe {
        graft_model_set_chat_template(model, c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()))
    }
}

#[test]
fn a_chosen_template_is_used_until_reset() {
    let path = CString::new(model_path().to_str().expect("UTF-8 path")).expect("no NUL");
    let mut mp = graft_model_params_default();
    mp.threads = 1;
    let mut model = std::ptr::null_mut();
    // SAFETY: valid C string, params and out pointer.
    let st = unsafe { graft_model_open(path.as_ptr(), &mp, &mut model) };
    assert_eq!(st, graft_status::GRAFT_OK, "{}", last_error());

    let chatml = "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
                  <|im_start|>assistant\n";
    assert_eq!(
        apply(model),
        chatml,
        "SmolLM2's own template, as llama.cpp formats it"
    );

    assert_eq!(
        set(model, Some("gemma")),
        graft_status::GRAFT_OK,
        "{}",
        last_error()
    );
    let gemma = "<start_of_turn>user\nBe terse.\n\nHi<end_of_turn>\n<start_of_turn>model\n";
    assert_eq!(apply(model), gemma);

    assert_eq!(
        set(model, Some("no-such-template")),
        graft_status::GRAFT_ERR_TEMPLATE
    );
    let msg = last_error();
    assert!(
        msg.contains("no-such-template") && msg.contains("llama3"),
        "{msg}"
    );
    assert_eq!(
        apply(model),
        gemma,
        "a refused choice keeps the previous one"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain.jinja");
    std::fs::write(
        &file,
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}",
    )
    .expect("write template");
    let spec = file.to_str().expect("UTF-8 path");
    assert_eq!(
        set(model, Some(spec)),
        graft_status::GRAFT_OK,
        "{}",
        last_error()
    );
    assert_eq!(apply(model), "system: Be terse.\nuser: Hi\n");

    // The hostile template (a nested range(10000) loop): graft_chat_apply stops it
    // with GRAFT_ERR_TEMPLATE naming the bound; the model stays usable.
    let hostile = dir.path().join("nested.jinja");
    std::fs::write(
        &hostile,
        "{% for i in range(10000) %}{% for j in range(10000) %}\
         {{ 'twenty bytes a turn' }}{% endfor %}{% endfor %}",
    )
    .expect("write template");
    assert_eq!(
        set(model, Some(hostile.to_str().expect("UTF-8 path"))),
        graft_status::GRAFT_OK,
        "{}",
        last_error()
    );
    assert_eq!(
        try_apply(model),
        Err(graft_status::GRAFT_ERR_TEMPLATE),
        "the nested loop rendered"
    );
    let msg = last_error();
    assert!(msg.contains("chat template was stopped"), "{msg}");

    assert_eq!(set(model, None), graft_status::GRAFT_OK);
    assert_eq!(apply(model), chatml);
    assert_eq!(
        set(std::ptr::null_mut(), Some("gemma")),
        graft_status::GRAFT_ERR_NULL_ARG
    );
    assert_eq!(graft_model_close(model), graft_status::GRAFT_OK);
}
