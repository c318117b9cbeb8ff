//! Tokenize, detokenize and the chat template.

use crate::cbuf::{slice_arg, str_arg, write_text};
use crate::error::{graft_status, FfiError};
use crate::guard::call;
use crate::handle;
use crate::model::graft_model;
use graft_runtime::chat_template::{ChatMessage, ChatTemplate};
use std::ffi::c_char;

/// Turns C token ids into checked vocabulary ids.
pub(crate) fn check_ids(m: &graft_model, ids: &[i32], arg: &str) -> Result<Vec<u32>, FfiError> {
    let n_vocab = m.model.config().n_vocab;
    ids.iter()
        .enumerate()
        .map(|(i, &id)| {
            u32::try_from(id)
                .ok()
                .filter(|&u| (u as usize) < n_vocab)
                .ok_or_else(|| {
                    FfiError::invalid(format!(
                        "{arg}[{i}] = {id} is not a token id (vocabulary size {n_vocab})"
                    ))
                })
        })
        .collect()
}

/// Tokenizes the UTF-8 `text` as llama.cpp does. `add_special` adds the model's BOS/EOS where
/// it asks for them; `parse_special` turns special-token texts (e.g. `<|im_start|>`) into
/// their ids. Writes up to `capacity` ids to `tokens` and the number of ids to `*n_tokens`;
/// when they do not fit, returns `GRAFT_ERR_BUFFER_TOO_SMALL` with the required count in
/// `*n_tokens` (pass `tokens = NULL, capacity = 0` to ask for the size).
///
/// # Safety
/// `text` is NULL or NUL-terminated; `tokens` is valid for `capacity` writes when
/// `capacity > 0`; `n_tokens` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn graft_tokenize(
    model: *const graft_model,
    text: *const c_char,
    add_special: bool,
    parse_special: bool,
    tokens: *mut i32,
    capacity: usize,
    n_tokens: *mut usize,
) -> graft_status {
    call(|| {
        let m = handle::get(model, "model")?;
        // SAFETY: the caller guarantees `text` is NULL or NUL-terminated.
        let text = unsafe { str_arg(text, "text") }?;
        if n_tokens.is_null() {
            return Err(FfiError::null("n_tokens"));
        }
        let ids = m.tokenizer.encode(text, add_special, parse_special);
        // SAFETY: checked non-NULL; the caller guarantees it is valid for a write.
        unsafe { n_tokens.write(ids.len()) };
        if ids.len() > capacity {
            return Err(FfiError::new(
                graft_status::GRAFT_ERR_BUFFER_TOO_SMALL,
                format!(
                    "the text is {} tokens, the buffer holds {capacity}",
                    ids.len()
                ),
            ));
        }
        if ids.is_empty() {
            return Ok(());
        }
        if tokens.is_null() {
            return Err(FfiError::null("tokens (with capacity > 0)"));
        }
        for (i, &id) in ids.iter().enumerate() {
            // SAFETY: i < ids.len() <= capacity, and `tokens` is valid for `capacity` writes.
            unsafe { tokens.add(i).write(id as i32) };
        }
        Ok(())
    })
}

/// Turns `n_tokens` ids back into UTF-8 text (invalid UTF-8 shows as U+FFFD). With
/// `render_special` false, control tokens such as `<|im_end|>` are left out (as generation
/// does). Writes the text and a NUL into `buf` and its length (without the NUL) to `*len`;
/// when `capacity < *len + 1` returns `GRAFT_ERR_BUFFER_TOO_SMALL` (`buf = NULL, capacity =
/// 0` asks for the size).
///
/// # Safety
/// `tokens` points to `n_tokens` ids (may be NULL when 0); `buf` is valid for `capacity`
/// writes when `capacity > 0`; `len` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn graft_detokenize(
    model: *const graft_model,
    tokens: *const i32,
    n_tokens: usize,
    render_special: bool,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> graft_status {
    call(|| {
        let m = handle::get(model, "model")?;
        // SAFETY: the caller guarantees `tokens` holds `n_tokens` ids.
        let ids = unsafe { slice_arg(tokens, n_tokens, "tokens") }?;
        if len.is_null() {
            return Err(FfiError::null("len"));
        }
        let ids = check_ids(&m, ids, "tokens")?;
        let text = if render_special {
            m.tokenizer.decode(&ids)
        } else {
            m.tokenizer.decode_skip_special(&ids)
        };
        // SAFETY: `len` checked non-NULL; `buf` valid for `capacity` per the caller.
        unsafe { write_text(text.as_bytes(), buf, capacity, len) }
    })
}

/// One chat message: `role` ("system", "user", "assistant") and `content`, both UTF-8 and
/// NUL-terminated, owned by the caller.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_chat_message {
    /// The speaker.
    pub role: *const c_char,
    /// The text.
    pub content: *const c_char,
}

/// The chat template `graft run --chat [--chat-template ..]` uses: the one chosen with
/// `graft_model_set_chat_template`, else [`ChatTemplate::for_model`].
pub(crate) fn template_of(m: &graft_model, jinja: bool) -> Result<ChatTemplate, FfiError> {
    let choice = m.template_choice();
    ChatTemplate::select(
        m.model.gguf().metadata(),
        &m.tokenizer,
        jinja,
        choice.as_deref(),
    )
    .map_err(|e| FfiError::new(graft_status::GRAFT_ERR_TEMPLATE, e.to_string()))
}

/// Chooses the chat template `graft_chat_apply`, `graft_train` and `graft_eval` render chats
/// with on this model, as `graft --chat-template NAME|FILE` does: one of llama.cpp's built-in
/// names (`chatml`, `llama2`, `llama2-sys`, `llama2-sys-bos`, `llama2-sys-strip`, `llama3`,
/// `gemma`, `phi3`, `phi4`, `mistral-v7`, `mistral-v7-tekken`, `zephyr`; rendered exactly as
/// llama.cpp renders them) or the path of a Jinja template file (UTF-8, at most 1 MiB, rendered
/// with the same bounds as a model's own template). NULL goes back to the model's own template.
/// Needed for the many GGUF files that carry no template. The choice is checked now: an unknown
/// name, a missing or unreadable file or a template that does not parse is
/// `GRAFT_ERR_TEMPLATE` and leaves the previous choice in place.
///
/// Thread-safety: may be called while other threads use the model; a render that already
/// started keeps the template it had.
///
/// # Safety
/// `template` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn graft_model_set_chat_template(
    model: *const graft_model,
    template: *const c_char,
) -> graft_status {
    call(|| {
        let m = handle::get(model, "model")?;
        let choice = if template.is_null() {
            None
        } else {
            // SAFETY: non-NULL and NUL-terminated per the caller.
            let spec = unsafe { str_arg(template, "template") }?;
            ChatTemplate::from_name_or_file(spec, &m.tokenizer)
                .map_err(|e| FfiError::new(graft_status::GRAFT_ERR_TEMPLATE, e.to_string()))?;
            Some(spec.to_string())
        };
        *m.chat_template
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = choice;
        Ok(())
    })
}

/// Formats `n_messages` messages with the model's chat template, exactly as
/// `graft run --chat` (and `--jinja` when `jinja` is true) does, or with the template chosen by
/// `graft_model_set_chat_template` (as `--chat-template`; `jinja` then does not matter);
/// `add_assistant` appends the opening of the assistant's turn. The text goes to `buf` as in
/// `graft_detokenize` (`GRAFT_ERR_BUFFER_TOO_SMALL` with the size in `*len` when it does not
/// fit).
///
/// # Safety
/// `messages` points to `n_messages` messages whose strings are NULL or NUL-terminated; `buf`
/// is valid for `capacity` writes when `capacity > 0`; `len` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn graft_chat_apply(
    model: *const graft_model,
    messages: *const graft_chat_message,
    n_messages: usize,
    add_assistant: bool,
    jinja: bool,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> graft_status {
    call(|| {
        let m = handle::get(model, "model")?;
        // SAFETY: the caller guarantees `messages` holds `n_messages` messages.
        let msgs = unsafe { slice_arg(messages, n_messages, "messages") }?;
        if len.is_null() {
            return Err(FfiError::null("len"));
        }
        let mut list = Vec::with_capacity(msgs.len());
        for (i, msg) in msgs.iter().enumerate() {
            // SAFETY: the caller guarantees each string is NULL or NUL-terminated.
            let role = unsafe { str_arg(msg.role, &format!("messages[{i}].role")) }?;
            // SAFETY: as above.
            let content = unsafe { str_arg(msg.content, &format!("messages[{i}].content")) }?;
            list.push(ChatMessage::new(role, content));
        }
        let text = template_of(&m, jinja)?
            .render(&list, add_assistant)
            .map_err(|e| FfiError::new(graft_status::GRAFT_ERR_TEMPLATE, e.to_string()))?;
        // SAFETY: `len` checked non-NULL; `buf` valid for `capacity` per the caller.
        unsafe { write_text(text.as_bytes(), buf, capacity, len) }
    })
}
