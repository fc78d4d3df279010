//! Element conversions bit-exact with the reference: dtype → F32/F16/BF16/Q8_0. To be completed.
