//! Q5_K (`quantize_row_q5_K_ref`): Q4_K's super-block pipeline and scale layout with 5-bit
//! levels (4 low bits in `qs`, the fifth in `qh`).

use super::kquant::Qkx2;
use super::q4_k::quantize_kx2;

pub(super) const BLOCK: usize = 256;
pub(super) const BLOCK_BYTES: usize = 176;

const SEARCH: Qkx2 = Qkx2 { nmax: 31, rmin: -0.5, rdelta: 0.1, nstep: 15 };

/// Quantizes whole super-blocks; `out` holds exactly `x.len() / 256 * 176` bytes.
#[inline(always)]
pub(super) fn quantize_blocks(x: &[f32], out: &mut [u8]) {
    quantize_kx2(&SEARCH, BLOCK_BYTES, pack_levels, x, out);
}

/// `qh[l]` bit 2c / 2c+1: fifth bit of element l of sub-block 2c / 2c+1; low nibbles as Q4_K.
#[inline(always)]
fn pack_levels<const LANES: usize>(levels: &[[u8; LANES]; 32], lane0: usize, ob: &mut [u8]) {
    let (qh, qs) = ob[16..176].split_at_mut(32);
    qh.fill(0);
    for c in 0..4 {
        for l in 0..32 {
            let (lo, hi) = (levels[l][lane0 + 2 * c], levels[l][lane0 + 2 * c + 1]);
            qh[l] |= ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1));
            qs[32 * c + l] = (lo & 0xf) | ((hi & 0xf) << 4);
        }
    }
}
