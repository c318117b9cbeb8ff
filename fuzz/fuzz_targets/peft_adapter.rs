//! Fuzzes Hugging Face PEFT adapters: the input is a flag byte, then (`graft_fuzz::split`)
//! a `u16` length-prefixed `adapter_config.json`, then the rest as `adapter_model.safetensors`,
//! and given to `format_peft::from_peft_bytes`, the parser behind `LoraAdapter::load` for PEFT
//! directories. The flag byte's low bit says whether the tiny base model's architecture and head
//! counts are passed (as `load_with_base` does) or not (as `graft adapter convert` without
//! `--base`). Any input must give an adapter or an error — never a panic or an unbounded
//! allocation; an adapter that loads is also checked against the tiny base model
//! (`validate_against`, then `LoadedAdapter::new`), which must not panic either.
#![no_main]

use std::path::Path;

use graft_runtime::adapter::format_peft::from_peft_bytes;
use graft_runtime::adapter::validate::head_layout;
use graft_runtime::lora::LoadedAdapter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let model = graft_fuzz::tiny_model();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let parts = graft_fuzz::split(rest, 2);
    let (config, weights) = (parts[0], parts[1]);
    let with_base = flags & 1 == 1;
    let (arch, heads) = if with_base {
        let heads = head_layout(model.gguf(), "llama").expect("the tiny model has head counts");
        (Some("llama"), heads)
    } else {
        (None, None)
    };
    let Ok(adapter) = from_peft_bytes(
        (Path::new("adapter_config.json"), config),
        (Path::new("adapter_model.safetensors"), weights),
        arch,
        heads,
    ) else {
        return;
    };
    let _ = adapter.validate_against(model.gguf());
    let _ = LoadedAdapter::new(model, adapter, "fuzz");
});
