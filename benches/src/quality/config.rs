//! What a quality run measures: the models, the formats, the texts and the sizes, from the
//! `GRAFT_QQ_*` environment variables (see [`Config::from_env`]).

use std::path::{Path, PathBuf};

use graft_quant::model_cache::{models_dir, TEST_MODEL_FILE};
use graft_quant::target::FileType;

use super::QualityError;

/// Gemma 3 270M's file in the model cache (`scripts/fetch-model.sh gemma3-270m`).
pub const GEMMA3_FILE: &str = "gemma-3-270m-q4_k_m.gguf";

/// One quantized model to measure: a file type, with or without the importance matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// The file type (`graft quantize --type`).
    pub file_type: FileType,
    /// Quantized with the run's importance matrix (`--imatrix`).
    pub imatrix: bool,
}

impl Variant {
    /// `q4_k_m` or `q4_k_m+imat`.
    pub fn label(&self) -> String {
        if self.imatrix {
            format!("{}+imat", self.file_type.name())
        } else {
            self.file_type.name().to_string()
        }
    }

    /// Parses [`Variant::label`]'s form (`q4_k_m`, `q4_k_m+imat`).
    pub fn parse(s: &str) -> Option<Variant> {
        let (name, imatrix) = match s.strip_suffix("+imat") {
            Some(n) => (n, true),
            None => (s, false),
        };
        FileType::from_name(name.trim()).map(|file_type| Variant { file_type, imatrix })
    }
}

/// The file types of the full run, best first: every type `graft quantize` writes below the
/// f32 reference (f16 left out: on these models it is the reference's twin).
pub const FULL_TYPES: [FileType; 15] = [
    FileType::Q8_0,
    FileType::Q6_K,
    FileType::Q5_K_M,
    FileType::Q5_K_S,
    FileType::Q5_1,
    FileType::Q5_0,
    FileType::Q4_K_M,
    FileType::Q4_K_S,
    FileType::Q4_1,
    FileType::Q4_0,
    FileType::NF4,
    FileType::Q3_K_L,
    FileType::Q3_K_M,
    FileType::Q3_K_S,
    FileType::Q2_K,
];

/// The file types the full run also quantizes with the importance matrix: the k-quant mixes
/// and the 32-wide types ggml weights (Q4_0, Q5_0; their `ffn_down` rule applies too).
pub const FULL_IMATRIX_TYPES: [FileType; 10] = [
    FileType::Q5_K_M,
    FileType::Q5_K_S,
    FileType::Q5_0,
    FileType::Q4_K_M,
    FileType::Q4_K_S,
    FileType::Q4_0,
    FileType::Q3_K_L,
    FileType::Q3_K_M,
    FileType::Q3_K_S,
    FileType::Q2_K,
];

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The models, each measured on its own.
    pub models: Vec<PathBuf>,
    /// The variants, in table order.
    pub variants: Vec<Variant>,
    /// The held-out text the KL divergence and perplexity are measured on.
    pub eval_text: PathBuf,
    /// The text the importance matrix is computed on (not the evaluation text).
    pub calib_text: PathBuf,
    /// Perplexity/KLD window size.
    pub eval_ctx: usize,
    /// Windows evaluated (the text's first `eval_chunks · eval_ctx` tokens).
    pub eval_chunks: usize,
    /// Importance-matrix chunk size.
    pub imatrix_ctx: usize,
    /// Importance-matrix chunks.
    pub imatrix_chunks: usize,
    /// Prompt tokens of the prefill speed test (`ppN`).
    pub pp_tokens: usize,
    /// Tokens of the decode speed test (`tgN`).
    pub tg_tokens: usize,
    /// Timed repetitions of each speed test.
    pub speed_reps: usize,
    /// Compute threads.
    pub threads: usize,
    /// Results go to `<out_dir>/<model file stem>/`.
    pub out_dir: PathBuf,
    /// Keep the quantized models (else each is deleted once measured).
    pub keep_models: bool,
    /// The short (CI) configuration.
    pub short: bool,
}

/// A lookup of `GRAFT_QQ_*` settings (the environment, or a test's own).
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn env_usize(env: Lookup<'_>, name: &str, default: usize) -> Result<usize, QualityError> {
    match env(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|&n: &usize| n > 0)
            .ok_or_else(|| QualityError::Config(format!("{name}={v}: not a positive integer"))),
    }
}

/// A cached model's path, or an error saying how to fetch it.
fn cached(file: &str, fetch: &str) -> Result<PathBuf, QualityError> {
    let p = models_dir().join(file);
    if p.is_file() {
        Ok(p)
    } else {
        Err(QualityError::Config(format!(
            "model {} is missing: run {fetch} (or point GRAFT_QQ_MODEL at any GGUF)",
            p.display()
        )))
    }
}

impl Config {
    /// The configuration from the environment:
    ///
    /// - `GRAFT_QQ_SHORT=1`: the CI run (SmolLM2; `q8_0`, `q4_k_m`, `q4_k_m+imat`; two
    ///   windows of 128 tokens; an imatrix from two chunks of 128; pp32/tg8 once).
    /// - `GRAFT_QQ_MODEL=PATH[,PATH...]` (default: SmolLM2-135M from the model cache; in the
    ///   full run also Gemma 3 270M when `GRAFT_QQ_GEMMA=1`): missing cached models are an
    ///   error naming `scripts/fetch-model.sh`.
    /// - `GRAFT_QQ_TYPES=q4_0,q4_k_m+imat,...` (default: [`FULL_TYPES`], then
    ///   [`FULL_IMATRIX_TYPES`] with the imatrix).
    /// - `GRAFT_QQ_TEXT` (default `/usr/share/common-licenses/GPL-3`), `GRAFT_QQ_CALIB`
    ///   (default `/usr/share/common-licenses/GFDL-1.3`).
    /// - `GRAFT_QQ_CTX`, `GRAFT_QQ_CHUNKS` (evaluation windows; default 3 of 512),
    ///   `GRAFT_QQ_IMATRIX_CTX`, `GRAFT_QQ_IMATRIX_CHUNKS` (default 4 of 512), `GRAFT_QQ_PP`,
    ///   `GRAFT_QQ_TG`, `GRAFT_QQ_REPS` (default pp128, tg32, 2 repetitions),
    ///   `GRAFT_QQ_THREADS` (default: all cores), `GRAFT_QQ_KEEP=1` (keep the quantized files).
    ///
    /// `workspace_target` is the workspace's `target/` directory; results go to
    /// `target/quant-quality/<model>/` (short runs: `target/quant-quality-short/<model>/`).
    pub fn from_env(workspace_target: &Path) -> Result<Config, QualityError> {
        Self::from_lookup(workspace_target, &|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] with the settings looked up in `lookup` (empty values count as
    /// unset).
    pub fn from_lookup(
        workspace_target: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, QualityError> {
        let env = &|name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let short = env("GRAFT_QQ_SHORT").is_some_and(|v| v != "0");
        let models = match env("GRAFT_QQ_MODEL") {
            Some(list) => list
                .split(',')
                .map(|p| {
                    let p = PathBuf::from(p.trim());
                    if p.is_file() {
                        Ok(p)
                    } else {
                        Err(QualityError::Config(format!(
                            "GRAFT_QQ_MODEL: {} is not a file",
                            p.display()
                        )))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => {
                let mut m = vec![cached(TEST_MODEL_FILE, "scripts/fetch-model.sh")?];
                if !short && env("GRAFT_QQ_GEMMA").is_some_and(|v| v != "0") {
                    m.push(cached(GEMMA3_FILE, "scripts/fetch-model.sh gemma3-270m")?);
                }
                m
            }
        };
        let variants = match env("GRAFT_QQ_TYPES") {
            Some(list) => list
                .split(',')
                .map(|s| {
                    Variant::parse(s).ok_or_else(|| {
                        QualityError::Config(format!(
                            "GRAFT_QQ_TYPES: '{s}' is not a graft quantize type (optionally \
                             with +imat)"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None if short => ["q8_0", "q4_k_m", "q4_k_m+imat"]
                .iter()
                .filter_map(|s| Variant::parse(s))
                .collect(),
            None => FULL_TYPES
                .iter()
                .map(|&file_type| Variant {
                    file_type,
                    imatrix: false,
                })
                .chain(FULL_IMATRIX_TYPES.iter().map(|&file_type| Variant {
                    file_type,
                    imatrix: true,
                }))
                .collect(),
        };
        let (ctx, chunks, ictx, ichunks, pp, tg, reps) = if short {
            (128, 2, 128, 2, 32, 8, 1)
        } else {
            (512, 3, 512, 4, 128, 32, 2)
        };
        let text = |var: &str, default: &str| -> Result<PathBuf, QualityError> {
            let p = PathBuf::from(env(var).unwrap_or_else(|| default.to_string()));
            if p.is_file() {
                Ok(p)
            } else {
                Err(QualityError::Config(format!(
                    "{var}: text file {} not found",
                    p.display()
                )))
            }
        };
        Ok(Config {
            models,
            variants,
            eval_text: text("GRAFT_QQ_TEXT", "/usr/share/common-licenses/GPL-3")?,
            calib_text: text("GRAFT_QQ_CALIB", "/usr/share/common-licenses/GFDL-1.3")?,
            eval_ctx: env_usize(env, "GRAFT_QQ_CTX", ctx)?,
            eval_chunks: env_usize(env, "GRAFT_QQ_CHUNKS", chunks)?,
            imatrix_ctx: env_usize(env, "GRAFT_QQ_IMATRIX_CTX", ictx)?,
            imatrix_chunks: env_usize(env, "GRAFT_QQ_IMATRIX_CHUNKS", ichunks)?,
            pp_tokens: env_usize(env, "GRAFT_QQ_PP", pp)?,
            tg_tokens: env_usize(env, "GRAFT_QQ_TG", tg)?,
            speed_reps: env_usize(env, "GRAFT_QQ_REPS", reps)?,
            threads: env_usize(
                env,
                "GRAFT_QQ_THREADS",
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )?,
            out_dir: workspace_target.join(if short {
                "quant-quality-short"
            } else {
                "quant-quality"
            }),
            keep_models: env("GRAFT_QQ_KEEP").is_some_and(|v| v != "0"),
            short,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_labels_round_trip() {
        for s in ["q4_k_m", "q2_k+imat", "nf4", "q8_0"] {
            assert_eq!(Variant::parse(s).map(|v| v.label()).as_deref(), Some(s));
        }
        assert_eq!(Variant::parse("q9_9"), None);
    }
}
