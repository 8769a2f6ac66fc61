//! The mixtures llama-quantize accepts as its `type` argument (tools/quantize/quantize.cpp),
//! with the `general.file_type` each writes and the default tensor type it starts from
//! (`llama_ftype_get_default_type`).

use crate::ggml_type::GgmlType;

/// One `--type` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mixture {
    /// The name llama-quantize uses (`Q4_K_M`).
    pub name: &'static str,
    /// `general.file_type` (`llama_ftype`).
    pub ftype: u32,
    /// The type most 2-D weights get before the per-tensor rules.
    pub default: GgmlType,
}

macro_rules! mix {
    ($name:literal, $ftype:expr, $t:ident) => {
        Mixture {
            name: $name,
            ftype: $ftype,
            default: GgmlType::$t,
        }
    };
}

/// Every mixture, with llama-quantize's aliases (`Q4_K` = `Q4_K_M`, …).
pub const MIXTURES: &[Mixture] = &[
    mix!("F32", 0, F32),
    mix!("F16", 1, F16),
    mix!("Q4_0", 2, Q4_0),
    mix!("Q4_1", 3, Q4_1),
    mix!("Q8_0", 7, Q8_0),
    mix!("Q5_0", 8, Q5_0),
    mix!("Q5_1", 9, Q5_1),
    mix!("Q2_K", 10, Q2_K),
    mix!("Q3_K_S", 11, Q3_K),
    mix!("Q3_K_M", 12, Q3_K),
    mix!("Q3_K", 12, Q3_K),
    mix!("Q3_K_L", 13, Q3_K),
    mix!("Q4_K_S", 14, Q4_K),
    mix!("Q4_K_M", 15, Q4_K),
    mix!("Q4_K", 15, Q4_K),
    mix!("Q5_K_S", 16, Q5_K),
    mix!("Q5_K_M", 17, Q5_K),
    mix!("Q5_K", 17, Q5_K),
    mix!("Q6_K", 18, Q6_K),
    mix!("IQ2_XXS", 19, IQ2_XXS),
    mix!("IQ2_XS", 20, IQ2_XS),
    mix!("Q2_K_S", 21, Q2_K),
    mix!("IQ3_XS", 22, IQ3_S),
    mix!("IQ3_XXS", 23, IQ3_XXS),
    mix!("IQ1_S", 24, IQ1_S),
    mix!("IQ4_NL", 25, IQ4_NL),
    mix!("IQ3_S", 26, IQ3_S),
    mix!("IQ3_M", 27, IQ3_S),
    mix!("IQ2_S", 28, IQ2_XS),
    mix!("IQ2_M", 29, IQ2_S),
    mix!("IQ4_XS", 30, IQ4_XS),
    mix!("IQ1_M", 31, IQ1_M),
    mix!("BF16", 32, BF16),
    mix!("TQ1_0", 36, TQ1_0),
    mix!("TQ2_0", 37, TQ2_0),
    // bitnet.cpp's LLAMA_FTYPE_MOSTLY_I2_S (its fork of llama.h); only bitnet.cpp reads it
    mix!("I2_S", 40, I2_S),
];

impl Mixture {
    /// The `general.file_type` of a file whose weights are all `ty` (a conversion or
    /// dequantization to F32, F16, BF16 or Q8_0): the mixture named as the type.
    pub fn file_type_of(ty: GgmlType) -> Option<u32> {
        MIXTURES
            .iter()
            .find(|m| m.name == ty.name() && m.default == ty)
            .map(|m| m.ftype)
    }

    /// Looks a mixture up by name (case-insensitive) or by its file-type number, as
    /// llama-quantize's `try_parse_ftype` does.
    pub fn parse(s: &str) -> Result<&'static Mixture, String> {
        if let Some(m) = MIXTURES.iter().find(|m| m.name.eq_ignore_ascii_case(s)) {
            // aliases (`Q4_K`) resolve to the entry listed first for their file type (`Q4_K_M`)
            return Ok(Mixture::from_ftype(m.ftype).unwrap_or(m));
        }
        if let Ok(n) = s.parse::<u32>() {
            if let Some(m) = MIXTURES.iter().find(|m| m.ftype == n) {
                return Ok(m);
            }
        }
        let names: Vec<&str> = MIXTURES.iter().map(|m| m.name).collect();
        Err(format!(
            "unknown quantization type '{s}'; choose one of: {}",
            names.join(", ")
        ))
    }

    /// Looks a mixture up by `general.file_type`.
    pub fn from_ftype(ftype: u32) -> Option<&'static Mixture> {
        MIXTURES.iter().find(|m| m.ftype == ftype)
    }

    pub fn is(&self, name: &str) -> bool {
        Mixture::parse(name).is_ok_and(|m| m.ftype == self.ftype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_parse() {
        assert_eq!(Mixture::parse("q4_k_m").unwrap().ftype, 15);
        assert_eq!(Mixture::parse("Q4_K").unwrap().name, "Q4_K_M");
        assert_eq!(Mixture::parse("15").unwrap().name, "Q4_K_M");
        assert_eq!(Mixture::parse("7").unwrap().default, GgmlType::Q8_0);
        assert!(Mixture::parse("Q9_K").unwrap_err().contains("Q4_K_M"));
        for m in MIXTURES {
            assert_eq!(Mixture::from_ftype(m.ftype).unwrap().ftype, m.ftype);
        }
    }
}
