//! Kernels compiled twice: for AVX2 with fused multiply-adds where the CPU has them (picked at
//! run time), and for the baseline CPU with a multiply and an add.

/// How a kernel multiplies and adds: `a · b + c` as two roundings, or one fused.
pub(super) trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// Two roundings, for CPUs without FMA.
pub(super) struct Separate;

/// One rounding: `vfmadd` where the kernel is compiled for FMA.
pub(super) struct Fused;

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// `fn $name(args)`: `$kernel::<Fused>` compiled for AVX2 and FMA where the CPU has them
/// (checked at each call, a cached flag), else `$kernel::<Separate>`.
macro_rules! with_fma {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) => $kernel:ident) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                #[target_feature(enable = "avx2,fma")]
                fn fused($($arg: $ty),*) {
                    $kernel::<$crate::kernels::fma::Fused>($($arg),*)
                }
                // SAFETY: the CPU has both features, checked just above.
                return unsafe { fused($($arg),*) };
            }
            $kernel::<$crate::kernels::fma::Separate>($($arg),*)
        }
    };
    ($(#[$doc:meta])* unsafe fn $name:ident($($arg:ident: $ty:ty),*) => $kernel:ident) => {
        $(#[$doc])*
        unsafe fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fused($($arg: $ty),*) {
                    // SAFETY: the caller's contract.
                    unsafe { $kernel::<$crate::kernels::fma::Fused>($($arg),*) }
                }
                // SAFETY: the CPU has both features, checked just above; the rest is the
                // caller's contract.
                return unsafe { fused($($arg),*) };
            }
            // SAFETY: the caller's contract.
            unsafe { $kernel::<$crate::kernels::fma::Separate>($($arg),*) }
        }
    };
}

pub(super) use with_fma;
