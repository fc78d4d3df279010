//! Deterministic test inputs, mirrored exactly by scripts/quant-vectors/harness.c: a
//! splitmix64 stream turned into f32 values with operations that round identically in C
//! and Rust. Also compiled into benches/quant.rs (by path), so it uses nothing crate-local.

/// Number of input distributions (ids 0..DISTS), described in scripts/quant-vectors/README.md.
pub const DISTS: u32 = 11;

struct Stream(u64);

impl Stream {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0f32 / 16_777_216.0)
    }

    fn sym(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }

    fn gauss(&mut self) -> f32 {
        let (a, b, c, d) = (self.unit(), self.unit(), self.unit(), self.unit());
        (((a + b) + (c + d)) - 2.0) * 0.034_641_016
    }

    fn grid(&mut self) -> f32 {
        ((self.unit() * 17.0) as i32 - 8) as f32 * 0.25
    }

    fn element(&mut self, dist: u32, row: usize, i: usize, sub: u64) -> f32 {
        match dist {
            0 => self.gauss(),
            1 => self.sym(),
            3 => {
                if row.is_multiple_of(2) {
                    0.37
                } else {
                    -1.25
                }
            }
            4 => self.gauss() * if row.is_multiple_of(2) { 1e-36 } else { 1e-41 },
            5 => {
                if row.is_multiple_of(2) {
                    self.gauss() * 1e6
                } else {
                    self.sym() * 60000.0
                }
            }
            6 => {
                let g = self.gauss();
                if i % 32 == (row * 7) % 32 {
                    if (i / 32).is_multiple_of(2) {
                        1.5
                    } else {
                        -2.0
                    }
                } else {
                    g
                }
            }
            7 => f16_round(self.gauss() * 3.0),
            8 => self.grid(),
            9 => match sub {
                0 => self.gauss(),
                1 => self.sym(),
                2 => 0.0,
                3 => 0.5,
                4 => self.gauss() * 1e-36,
                5 => f16_round(self.gauss() * 50.0),
                6 => {
                    let g = self.gauss();
                    if g < 0.0 {
                        -g
                    } else {
                        g
                    }
                }
                _ => self.grid(),
            },
            10 => {
                let k = self.next_u64() % 16;
                match k {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    3 => 3e38,
                    4 => -3e38,
                    5 => 1e-45,
                    _ => self.gauss(),
                }
            }
            _ => 0.0,
        }
    }
}

/// An F16 GGUF value widened back to f32, as llama-quantize sees it.
fn f16_round(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

/// `nrows × n` values of distribution `dist` from `seed`, identical to `harness input`.
pub fn make_input(dist: u32, nrows: usize, n: usize, seed: u64) -> Vec<f32> {
    let mut s = Stream(seed);
    let mut out = Vec::with_capacity(nrows * n);
    let mut sub = 0;
    for row in 0..nrows {
        for i in 0..n {
            if dist == 9 && i % 32 == 0 {
                sub = s.next_u64() % 8;
            }
            out.push(s.element(dist, row, i, sub));
        }
    }
    out
}
