//! The Pareto front of (bits/weight, mean KLD): the points no other point beats on both.

/// Indices of the points on the front (lower x and lower y are better), in increasing x. A
/// point is on it when no other point has `x <=` and `y <=` with one of them strictly lower;
/// of exact duplicates the first is kept. Points with a non-finite coordinate are left out.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let mut front: Vec<usize> = (0..points.len())
        .filter(|&i| finite(&points[i]))
        .filter(|&i| {
            let (x, y) = points[i];
            !points.iter().enumerate().any(|(j, p)| {
                j != i
                    && finite(p)
                    && p.0 <= x
                    && p.1 <= y
                    && (p.0 < x || p.1 < y || (j < i && p.0 == x && p.1 == y))
            })
        })
        .collect();
    front.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0));
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominated_points_are_left_out() {
        let p = [
            (8.5, 0.001),
            (4.5, 0.05),
            (5.0, 0.06),
            (2.6, 0.4),
            (4.5, 0.05),
        ];
        assert_eq!(pareto_front(&p), vec![3, 1, 0]);
        assert_eq!(pareto_front(&[(1.0, f64::NAN)]), Vec::<usize>::new());
    }
}
