//! The GGUF container (in progress).
