//! graft-benches: criterion benches (see `benches/`) and the quantization-quality run behind
//! `cargo bench -p graft-benches --bench quant_quality` ([`quality`]).

pub mod quality;
