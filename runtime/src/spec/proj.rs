//! The one projection table: every name a block's linear layer goes by (GGUF tensor stem, Hugging
//! Face / PEFT module, the short name on graft's command line), so no other file spells them.
//!
//! | `Proj`  | GGUF tensor                | HF / PEFT module                   | short  |
//! |---------|----------------------------|------------------------------------|--------|
//! | `Q`     | `blk.N.attn_q.weight`      | `model.layers.N.self_attn.q_proj`  | `q`    |
//! | `K`     | `blk.N.attn_k.weight`      | `model.layers.N.self_attn.k_proj`  | `k`    |
//! | `V`     | `blk.N.attn_v.weight`      | `model.layers.N.self_attn.v_proj`  | `v`    |
//! | `O`     | `blk.N.attn_output.weight` | `model.layers.N.self_attn.o_proj`  | `o`    |
//! | `Gate`  | `blk.N.ffn_gate.weight`    | `model.layers.N.mlp.gate_proj`     | `gate` |
//! | `Up`    | `blk.N.ffn_up.weight`      | `model.layers.N.mlp.up_proj`       | `up`   |
//! | `Down`  | `blk.N.ffn_down.weight`    | `model.layers.N.mlp.down_proj`     | `down` |

use crate::config::ModelConfig;

/// A linear projection of a transformer block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proj {
    /// Query projection (`attn_q`).
    Q = 0,
    /// Key projection (`attn_k`).
    K = 1,
    /// Value projection (`attn_v`).
    V = 2,
    /// Attention output projection (`attn_output`).
    O = 3,
    /// FFN gate (`ffn_gate`).
    Gate = 4,
    /// FFN up (`ffn_up`).
    Up = 5,
    /// FFN down (`ffn_down`).
    Down = 6,
}

/// One row of the table: (projection, GGUF stem, HF parent module, HF module, short name).
struct Names {
    proj: Proj,
    gguf: &'static str,
    hf_parent: &'static str,
    hf: &'static str,
    short: &'static str,
}

const TABLE: [Names; 7] = [
    Names {
        proj: Proj::Q,
        gguf: "attn_q",
        hf_parent: "self_attn",
        hf: "q_proj",
        short: "q",
    },
    Names {
        proj: Proj::K,
        gguf: "attn_k",
        hf_parent: "self_attn",
        hf: "k_proj",
        short: "k",
    },
    Names {
        proj: Proj::V,
        gguf: "attn_v",
        hf_parent: "self_attn",
        hf: "v_proj",
        short: "v",
    },
    Names {
        proj: Proj::O,
        gguf: "attn_output",
        hf_parent: "self_attn",
        hf: "o_proj",
        short: "o",
    },
    Names {
        proj: Proj::Gate,
        gguf: "ffn_gate",
        hf_parent: "mlp",
        hf: "gate_proj",
        short: "gate",
    },
    Names {
        proj: Proj::Up,
        gguf: "ffn_up",
        hf_parent: "mlp",
        hf: "up_proj",
        short: "up",
    },
    Names {
        proj: Proj::Down,
        gguf: "ffn_down",
        hf_parent: "mlp",
        hf: "down_proj",
        short: "down",
    },
];

impl Proj {
    /// All seven, in forward order.
    pub const ALL: [Proj; 7] = [
        Proj::Q,
        Proj::K,
        Proj::V,
        Proj::O,
        Proj::Gate,
        Proj::Up,
        Proj::Down,
    ];

    /// Index in [`Proj::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    fn names(self) -> &'static Names {
        &TABLE[self.index()]
    }

    /// GGUF tensor stem: the tensor is `blk.N.<stem>.weight`.
    pub fn gguf_stem(self) -> &'static str {
        self.names().gguf
    }

    /// The GGUF tensor name of this projection in block `layer`.
    pub fn gguf_name(self, layer: usize) -> String {
        format!("blk.{layer}.{}.weight", self.gguf_stem())
    }

    /// Hugging Face parent module (`self_attn`, `mlp`).
    pub fn hf_parent(self) -> &'static str {
        self.names().hf_parent
    }

    /// Hugging Face module name, as PEFT's `target_modules` lists it (`q_proj`, ...).
    pub fn hf_name(self) -> &'static str {
        self.names().hf
    }

    /// The full Hugging Face module path of this projection in block `layer`.
    pub fn hf_module(self, layer: usize) -> String {
        format!(
            "model.layers.{layer}.{}.{}",
            self.hf_parent(),
            self.hf_name()
        )
    }

    /// Short name on graft's command line (`q`, `k`, `v`, `o`, `gate`, `up`, `down`).
    pub fn short_name(self) -> &'static str {
        self.names().short
    }

    /// The projection a GGUF stem names.
    pub fn from_gguf_stem(stem: &str) -> Option<Proj> {
        TABLE.iter().find(|n| n.gguf == stem).map(|n| n.proj)
    }

    /// The projection an HF `(parent, module)` pair names.
    pub fn from_hf(parent: &str, module: &str) -> Option<Proj> {
        TABLE
            .iter()
            .find(|n| n.hf_parent == parent && n.hf == module)
            .map(|n| n.proj)
    }

    /// Parses any of a projection's names: short (`q`), GGUF stem (`attn_q`) or HF (`q_proj`).
    pub fn parse(s: &str) -> Option<Proj> {
        let s = s.trim();
        TABLE
            .iter()
            .find(|n| n.short == s || n.gguf == s || n.hf == s)
            .map(|n| n.proj)
    }

    /// `(n_out, n_in)` of the projection's matrix in a model.
    pub fn dims(self, cfg: &ModelConfig) -> (usize, usize) {
        let d = cfg.n_embd;
        match self {
            Proj::Q => (cfg.q_dim(), d),
            Proj::K | Proj::V => (cfg.kv_dim(), d),
            Proj::O => (d, cfg.q_dim()),
            Proj::Gate | Proj::Up => (cfg.n_ff, d),
            Proj::Down => (d, cfg.n_ff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_are_in_enum_order_and_names_round_trip() {
        for (i, p) in Proj::ALL.into_iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(TABLE[i].proj, p);
            assert_eq!(Proj::from_gguf_stem(p.gguf_stem()), Some(p));
            assert_eq!(Proj::from_hf(p.hf_parent(), p.hf_name()), Some(p));
            for s in [p.short_name(), p.gguf_stem(), p.hf_name()] {
                assert_eq!(Proj::parse(s), Some(p), "{s}");
            }
        }
        assert_eq!(Proj::parse("qkv"), None);
        assert_eq!(Proj::from_hf("mlp", "q_proj"), None);
        assert_eq!(Proj::Down.gguf_name(3), "blk.3.ffn_down.weight");
        assert_eq!(Proj::K.hf_module(2), "model.layers.2.self_attn.k_proj");
    }
}
