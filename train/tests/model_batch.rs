//! Batches from packed rows: next-token targets never cross an example boundary, the loss
//! mask of the target token decides scoring, padding is unscored and its own segment.

use graft_train::data::PackedRow;
use graft_train::model::Batch;

#[test]
fn targets_and_mask_respect_boundaries_and_padding() {
    let row = PackedRow {
        ids: vec![10, 11, 12, 20, 21],
        loss_mask: vec![false, true, true, false, true],
        positions: vec![0, 1, 2, 0, 1],
        seq_ids: vec![0, 0, 0, 1, 1],
        boundaries: vec![0, 3, 5],
        examples: vec![0, 1],
    };
    let b = Batch::from_rows(&[row], 7).expect("batch");
    assert_eq!(b.ids, vec![10, 11, 12, 20, 21, 0, 0]);
    assert_eq!(b.targets[..5], [11, 12, 0, 21, 0]);
    // 10->11 scored (mask of 11), 11->12 scored, 12 is the last of its example, 20->21 scored,
    // 21 is the last token, padding never.
    assert_eq!(b.mask, vec![true, true, false, true, false, false, false]);
    assert_eq!(b.positions, vec![0, 1, 2, 0, 1, 0, 0]);
    assert_eq!(b.segments[..5], [0, 0, 0, 1, 1]);
    assert!(b.segments[5..].iter().all(|&s| s == u32::MAX));
    assert_eq!(b.n_scored(), 3);
    assert!(b.validate(22).is_ok());
    assert!(
        b.validate(21).is_err(),
        "id 21 is out of a 21-token vocabulary"
    );
}

#[test]
fn bad_rows_are_errors() {
    let row = PackedRow {
        ids: vec![1, 2, 3],
        loss_mask: vec![true, true],
        positions: vec![0, 1, 2],
        seq_ids: vec![0, 0, 0],
        boundaries: vec![0, 3],
        examples: vec![0],
    };
    assert!(
        Batch::from_rows(std::slice::from_ref(&row), 8).is_err(),
        "mask length"
    );
    let ok = PackedRow {
        loss_mask: vec![true; 3],
        ..row
    };
    assert!(
        Batch::from_rows(std::slice::from_ref(&ok), 2).is_err(),
        "row longer than seq_len"
    );
    assert!(Batch::from_rows(&[], 8).is_err());
    assert!(Batch::from_rows(&[ok], 3).is_ok());
}
