//! Backward of a residual add `y = a + b`: both inputs receive `dy`.

/// `da += dy` (call once per summand).
pub fn residual_backward(dy: &[f32], da: &mut [f32]) {
    for (o, &d) in da.iter_mut().zip(dy) {
        *o += d;
    }
}
