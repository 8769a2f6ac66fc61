//! A line-by-line Rust transliteration of common.wgsl's integer IEEE arithmetic
//! (`round_pack`, `unpack_sig`, `soft_mul`, `soft_div`, `soft_sqrt`; the WGSL writes the digit
//! steps of the division and the square root out instead of looping), shared by the tests that
//! check it against the CPU's IEEE `*`, `/` and `sqrt` (tests/codec_legacy_wgsl.rs,
//! tests/gpu_kquants.rs). Keep it in step with the shader.
#![allow(dead_code)]

fn round_pack(sign: u32, e_in: i32, sig_in: u32) -> u32 {
    let (mut e, mut sig) = (e_in, sig_in);
    if e >= 255 {
        return sign | 0x7f80_0000;
    }
    if e <= 0 {
        let sh = (1 - e) as u32;
        if sh >= 27 {
            sig = (sig != 0) as u32;
        } else {
            let lost = sig & ((1u32 << sh) - 1);
            sig = (sig >> sh) | (lost != 0) as u32;
        }
        e = 1;
    }
    let low = sig & 7;
    let mut m = sig >> 3;
    if low > 4 || (low == 4 && (m & 1) == 1) {
        m += 1;
    }
    let bits = (((e - 1) as u32) << 23) + m;
    if bits >= 0x7f80_0000 {
        return sign | 0x7f80_0000;
    }
    sign | bits
}

fn unpack_sig(a: u32) -> (u32, i32) {
    let ef = (a >> 23) as i32;
    let m = a & 0x7f_ffff;
    if ef == 0 {
        let sh = m.leading_zeros() - 8;
        return (m << sh, 1 - sh as i32);
    }
    (m | 0x80_0000, ef)
}

fn is_nan(a: u32) -> bool {
    (a & 0x7fff_ffff) > 0x7f80_0000
}

pub fn mul(a: u32, b: u32) -> u32 {
    let sign = (a ^ b) & 0x8000_0000;
    let (aa, ab) = (a & 0x7fff_ffff, b & 0x7fff_ffff);
    if is_nan(a) {
        return a | 0x40_0000;
    }
    if is_nan(b) {
        return b | 0x40_0000;
    }
    if aa == 0x7f80_0000 || ab == 0x7f80_0000 {
        if aa == 0 || ab == 0 {
            return 0x7fc0_0000;
        }
        return sign | 0x7f80_0000;
    }
    if aa == 0 || ab == 0 {
        return sign;
    }
    let (ma, ea) = unpack_sig(aa);
    let (mb, eb) = unpack_sig(ab);
    let (a1, a0, b1, b0) = (ma >> 12, ma & 0xfff, mb >> 12, mb & 0xfff);
    let mid = a1 * b0 + a0 * b1;
    let lo_full = a0 * b0 + ((mid & 0xfff) << 12);
    let lo = lo_full & 0xff_ffff;
    let hi = a1 * b1 + (mid >> 12) + (lo_full >> 24);
    let s: u32 = if hi >= 0x80_0000 { 21 } else { 20 };
    let sticky = ((lo & ((1u32 << s) - 1)) != 0) as u32;
    let sig = (hi << (24 - s)) | (lo >> s) | sticky;
    round_pack(sign, ea + eb - 147 + s as i32, sig)
}

pub fn div(a: u32, b: u32) -> u32 {
    let sign = (a ^ b) & 0x8000_0000;
    let (aa, ab) = (a & 0x7fff_ffff, b & 0x7fff_ffff);
    if is_nan(a) {
        return a | 0x40_0000;
    }
    if is_nan(b) {
        return b | 0x40_0000;
    }
    if aa == 0x7f80_0000 {
        if ab == 0x7f80_0000 {
            return 0x7fc0_0000;
        }
        return sign | 0x7f80_0000;
    }
    if ab == 0x7f80_0000 {
        return sign;
    }
    if ab == 0 {
        if aa == 0 {
            return 0x7fc0_0000;
        }
        return sign | 0x7f80_0000;
    }
    if aa == 0 {
        return sign;
    }
    let (ma, ea) = unpack_sig(aa);
    let (mb, eb) = unpack_sig(ab);
    let n: u32 = if ma < mb { 27 } else { 26 };
    let mut q = ma / mb;
    let mut rem = ma % mb;
    for k in [8u32, 8, 8, n - 24] {
        let t = rem << k;
        q = (q << k) | (t / mb);
        rem = t % mb;
    }
    let sig = q | (rem != 0) as u32;
    round_pack(sign, ea - eb - n as i32 + 153, sig)
}

fn sqrt_digit((root, rem): (u32, u32), m: u32, s: u32, p: u32) -> (u32, u32) {
    let hi_bit = 51 - 2 * p;
    let mut two = 0;
    if hi_bit >= s {
        two = ((m >> (hi_bit - s)) & 1) << 1;
    }
    if hi_bit > s {
        two |= (m >> (hi_bit - 1 - s)) & 1;
    }
    let rem = (rem << 2) | two;
    let trial = (root << 2) | 1;
    if rem >= trial {
        ((root << 1) | 1, rem - trial)
    } else {
        (root << 1, rem)
    }
}

pub fn sqrt(a: u32) -> u32 {
    if (a & 0x7fff_ffff) > 0x7f80_0000 {
        return a | 0x40_0000;
    }
    if (a & 0x7fff_ffff) == 0 {
        return a;
    }
    if a >= 0x8000_0000 {
        return 0x7fc0_0000;
    }
    if a == 0x7f80_0000 {
        return a;
    }
    let (m, eb) = unpack_sig(a);
    let e = eb - 150;
    let s: u32 = if (e & 1) != 0 { 27 } else { 28 };
    let k = (e - s as i32) / 2;
    // common.wgsl writes the 26 `sqrt_digit` calls out instead of looping
    let (mut root, mut rem) = (0u32, 0u32);
    for p in 0..26u32 {
        (root, rem) = sqrt_digit((root, rem), m, s, p);
    }
    let sig = (root << 1) | (rem != 0) as u32;
    round_pack(0, k + 152, sig)
}
