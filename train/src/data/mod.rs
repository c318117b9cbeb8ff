//! Datasets: JSONL examples in several shapes, validated with precise errors, deduplicated,
//! split deterministically, rendered to loss-masked token ids with the model's tokenizer and
//! chat template ([`render`]), and packed into rows.

mod dataset;
mod dedup;
mod error;
mod example;
mod options;
mod pack;
mod reader;
pub mod render;
mod report;
pub mod rng;
mod sample;
mod segment;
mod split;

pub use dataset::{check, check_reader, Dataset, Record};
pub use dedup::{jaccard, normalized, shingles};
pub use error::{DataError, LineError};
pub use example::{Example, Message, PreferencePrompt, Role};
pub use options::{LoadOptions, Policy, TokenCounter, TokenLimit, DEFAULT_MAX_LINE_BYTES};
pub use pack::{pack, pack_limited, Overlong, PackedRow, Packing, TokenizedExample};
pub use reader::{BoundedLines, RawLine};
pub use render::{PromptExample, Renderer, TokenizedPair};
pub use report::{DroppedLine, Duplicate, LoadReport};
pub use sample::{
    parse_marked, sample_indices, MaskedRun, RenderedExample, SCORED_CLOSE, SCORED_OPEN,
};
pub use segment::{LossMask, Segment};
pub use split::{split_file, split_file_with, Split, SplitRatios, SplitReport};
