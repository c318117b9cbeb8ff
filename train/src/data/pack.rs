//! Sequence packing: first-fit-decreasing of tokenized examples into rows of at most
//! `max_len` tokens, with per-example positions and boundaries for the attention mask.

use super::DataError;

/// One example after rendering and tokenization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedExample {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Per token: whether the loss covers it (same length as `ids`).
    pub mask: Vec<bool>,
}

/// What to do with an example longer than `max_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlong {
    /// Keep its first `max_len` tokens (default).
    #[default]
    Truncate,
    /// Leave it out.
    Drop,
}

/// A packed row: several examples back to back, not padded (length <= `max_len`).
///
/// Attention must not cross examples: token `i` may attend to token `j` only if
/// `seq_ids[i] == seq_ids[j]` and `j <= i`. The trainer also must not use the last token of
/// one example to predict the first token of the next (compare `seq_ids` of neighbours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRow {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Per token: whether the loss covers it.
    pub loss_mask: Vec<bool>,
    /// Per token: position within its own example (restarts at 0 for each example).
    pub positions: Vec<u32>,
    /// Per token: index of its example within the row (0, 1, ...).
    pub seq_ids: Vec<u32>,
    /// Start offset of each example in the row, then the row length (examples + 1 entries).
    pub boundaries: Vec<usize>,
    /// Index (into the input slice) of each example in the row, in row order.
    pub examples: Vec<usize>,
}

impl PackedRow {
    /// Number of tokens in the row.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the row holds no tokens.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The result of [`pack`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Packing {
    /// The rows.
    pub rows: Vec<PackedRow>,
    /// Examples cut to `max_len`: (index, original length).
    pub truncated: Vec<(usize, usize)>,
    /// Examples left out for being longer than `max_len`: (index, length).
    pub dropped: Vec<(usize, usize)>,
    /// Examples with no tokens, skipped.
    pub empty: Vec<usize>,
}

/// Pack examples into rows of at most `max_len` tokens by first-fit-decreasing: examples
/// sorted by length (longest first, ties by index), each put into the first row with room,
/// a new row opened when none has. Deterministic. Over-long examples are truncated or
/// dropped per `overlong` and listed in the result.
pub fn pack(
    sequences: &[TokenizedExample],
    max_len: usize,
    overlong: Overlong,
) -> Result<Packing, DataError> {
    pack_limited(sequences, max_len, None, overlong)
}

/// As [`pack`], with at most `max_examples` examples in a row (`None`: no limit). A row that
/// reaches the limit is closed even when tokens would still fit; this is how the trainer puts
/// a chosen number of examples into each optimizer step.
pub fn pack_limited(
    sequences: &[TokenizedExample],
    max_len: usize,
    max_examples: Option<usize>,
    overlong: Overlong,
) -> Result<Packing, DataError> {
    if max_examples == Some(0) {
        return Err(DataError::InvalidOption(
            "pack: max_examples must be > 0".into(),
        ));
    }
    if max_len == 0 {
        return Err(DataError::InvalidOption("pack: max_len must be > 0".into()));
    }
    let mut out = Packing::default();
    let mut items: Vec<(usize, usize)> = Vec::with_capacity(sequences.len());
    for (i, s) in sequences.iter().enumerate() {
        if s.ids.len() != s.mask.len() {
            return Err(DataError::InvalidOption(format!(
                "pack: example {i} has {} ids but {} mask entries",
                s.ids.len(),
                s.mask.len()
            )));
        }
        let n = s.ids.len();
        if n == 0 {
            out.empty.push(i);
        } else if n > max_len {
            match overlong {
                Overlong::Truncate => {
                    out.truncated.push((i, n));
                    items.push((i, max_len));
                }
                Overlong::Drop => out.dropped.push((i, n)),
            }
        } else {
            items.push((i, n));
        }
    }
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

    let mut tree = FirstFit::new(items.len(), max_len);
    let mut rows: Vec<PackedRow> = Vec::new();
    for &(i, n) in &items {
        let r = tree.take_first(n);
        if r == rows.len() {
            rows.push(PackedRow {
                ids: Vec::new(),
                loss_mask: Vec::new(),
                positions: Vec::new(),
                seq_ids: Vec::new(),
                boundaries: vec![0],
                examples: Vec::new(),
            });
        }
        let row = &mut rows[r];
        let seq = row.examples.len() as u32;
        let s = &sequences[i];
        row.ids.extend_from_slice(&s.ids[..n]);
        row.loss_mask.extend_from_slice(&s.mask[..n]);
        row.positions.extend(0..n as u32);
        row.seq_ids.resize(row.ids.len(), seq);
        row.boundaries.push(row.ids.len());
        row.examples.push(i);
        if max_examples.is_some_and(|m| row.examples.len() >= m) {
            tree.close(r);
        }
    }
    out.rows = rows;
    Ok(out)
}

/// A max segment tree over row capacities answering "leftmost row with capacity >= n".
/// Unopened rows have the full capacity, so the leftmost fit is either an open row or the
/// next row to open.
struct FirstFit {
    size: usize,
    cap: Vec<usize>,
}

impl FirstFit {
    fn new(n: usize, max_len: usize) -> Self {
        let size = n.max(1).next_power_of_two();
        FirstFit {
            size,
            cap: vec![max_len; 2 * size],
        }
    }

    /// Index of the leftmost leaf with capacity >= n, whose capacity is reduced by n.
    /// Callers guarantee `n <= max_len` and at most `size` items, so a leaf always fits.
    fn take_first(&mut self, n: usize) -> usize {
        let mut node = 1;
        while node < self.size {
            node = if self.cap[2 * node] >= n {
                2 * node
            } else {
                2 * node + 1
            };
        }
        let leaf = node - self.size;
        self.set(leaf, self.cap[node] - n);
        leaf
    }

    /// Takes no more items into row `leaf` (its capacity becomes 0).
    fn close(&mut self, leaf: usize) {
        self.set(leaf, 0);
    }

    fn set(&mut self, leaf: usize, cap: usize) {
        let node = leaf + self.size;
        self.cap[node] = cap;
        let mut p = node / 2;
        while p >= 1 {
            self.cap[p] = self.cap[2 * p].max(self.cap[2 * p + 1]);
            p /= 2;
        }
    }
}
