//! graft-benches: criterion benches (see `benches/`).
