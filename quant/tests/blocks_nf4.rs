//! NF4 against its documented byte layout (graft-native, so no outside oracle): the test decodes
//! the bytes by hand following the module doc of `graft_quant::blocks::nf4` and checks
//! `dequantize` agrees bit for bit, that each 4-bit code is the nearest level at the decoded
//! block scale, and that the dynamic dispatch reaches NF4.

use graft_quant::blocks::nf4::{self, NF4_BLOCK, NF4_GROUP_BLOCKS, NF4_LEVELS};
use graft_quant::blocks::{self, QuantError};
use graft_quant::QuantType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn bytes_follow_the_documented_layout() -> Result<(), QuantError> {
    // 300 blocks: one full group of 256 and a partial group of 44.
    let n_blocks = 300;
    let n = n_blocks * NF4_BLOCK;
    let mut rng = StdRng::seed_from_u64(3);
    let x: Vec<f32> = (0..n)
        .map(|i| {
            let spread = 0.01 * (1 + (i / NF4_BLOCK) % 7) as f32;
            rng.gen_range(-spread..spread)
        })
        .collect();
    let bytes = blocks::quantize(QuantType::NF4, &x)?;
    assert_eq!(bytes, nf4::quantize(&x));
    assert_eq!(bytes.len(), n / 2 + n_blocks + 2 * 8);
    assert_eq!(Some(bytes.len()), QuantType::NF4.tensor_bytes(n as u64));

    let f32_at = |off: usize| {
        f32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]])
    };
    let mut by_hand = vec![0.0f32; n];
    for (k, v) in by_hand.iter_mut().enumerate() {
        let b = k / NF4_BLOCK;
        let g = b / NF4_GROUP_BLOCKS;
        let group_at = n / 2 + n_blocks + 8 * g;
        let scale = f32_at(group_at) + f32_at(group_at + 4) * f32::from(bytes[n / 2 + b]);
        let byte = bytes[k / 2];
        let code = if k % 2 == 0 { byte & 0x0f } else { byte >> 4 };
        *v = NF4_LEVELS[usize::from(code)] * scale;
        // The code is the nearest level at this scale (ties may go either way).
        let err = (*v - x[k]).abs();
        for l in NF4_LEVELS {
            assert!(err <= (l * scale - x[k]).abs() + 1e-7, "element {k}");
        }
    }
    let mut out = vec![0.0f32; n];
    blocks::dequantize(QuantType::NF4, &bytes, &mut out)?;
    assert!(out
        .iter()
        .zip(&by_hand)
        .all(|(a, b)| a.to_bits() == b.to_bits()));

    // Unaligned input works too (the layout is bytes and f32 read with from_le_bytes).
    let mut shifted = vec![0u8; bytes.len() + 3];
    shifted[3..].copy_from_slice(&bytes);
    let mut out2 = vec![0.0f32; n];
    blocks::dequantize(QuantType::NF4, &shifted[3..], &mut out2)?;
    assert_eq!(out, out2);

    assert!(matches!(
        blocks::dequantize(QuantType::NF4, &bytes[..bytes.len() - 1], &mut out),
        Err(QuantError::ByteLength { .. })
    ));
    assert!(matches!(
        blocks::quantize(QuantType::NF4, &x[..100]),
        Err(QuantError::NotWholeBlocks { block: 64, .. })
    ));
    Ok(())
}
