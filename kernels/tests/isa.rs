//! ISA detection and the kernel table hand-out.

use graft_kernels::cpu::{available_isas, isa, kernels, kernels_for, Isa};

#[test]
fn detection_is_consistent() {
    let all = available_isas();
    assert_eq!(all.first(), Some(&Isa::Scalar));
    assert!(all.contains(&isa()), "isa() {} not in {all:?}", isa());
    assert_eq!(kernels().isa, isa());
    for i in &all {
        assert_eq!(kernels_for(*i).isa, *i);
        assert_eq!(Isa::from_name(i.name()), Some(*i));
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert!(all.contains(&Isa::Neon), "aarch64 must offer NEON: {all:?}");
        let grad = graft_kernels::grad::available_isas();
        assert!(
            grad.contains(&Isa::Neon),
            "the backward kernels run NEON: {grad:?}"
        );
    }
    // The backward kernels have a path for every ISA the forward kernels have.
    assert_eq!(graft_kernels::grad::available_isas(), all);
    #[cfg(target_arch = "x86_64")]
    {
        assert!(!all.contains(&Isa::Neon));
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            assert!(all.contains(&Isa::Avx2), "{all:?}");
        }
    }
    // An ISA this machine lacks falls back to the scalar table.
    for i in [Isa::Avx2, Isa::Avx512, Isa::Neon] {
        if !all.contains(&i) {
            assert_eq!(kernels_for(i).isa, Isa::Scalar);
        }
    }
    assert_eq!(Isa::from_name("AVX512"), Some(Isa::Avx512));
    assert_eq!(Isa::from_name("sse"), None);
}
