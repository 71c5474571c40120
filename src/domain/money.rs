//! Money as integers. The platform stores `price` as `decimal(10,2)` in major units;
//! Cal.com stores minor units (zero-decimal currencies as-is). Both are normalised to
//! hundredths of a major unit here, so comparing them never involves a float.

use std::fmt;

use serde::{Deserialize, Serialize};

/// ISO 4217 code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// Currencies Cal.com (through Stripe) stores without a minor unit.
const ZERO_DECIMAL: [&str; 16] = [
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

impl Currency {
    pub const EUR: Currency = Currency(*b"EUR");

    /// Accepts any case; rejects anything that is not three ASCII letters.
    pub fn parse(code: &str) -> Option<Self> {
        let bytes = code.trim().as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        let mut out = [0u8; 3];
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = b.to_ascii_uppercase();
        }
        Some(Self(out))
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    pub fn zero_decimal(&self) -> bool {
        ZERO_DECIMAL.contains(&self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::parse(&value).ok_or_else(|| format!("currency {value:?} is not an ISO 4217 code"))
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in hundredths of a major unit (`price * 100` of the platform column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub cents: i64,
    pub currency: Currency,
}

/// Largest amount `decimal(10,2)` holds, in hundredths.
pub const MAX_CENTS: i64 = 9_999_999_999;

impl Money {
    pub fn new(cents: i64, currency: Currency) -> Self {
        Self { cents, currency }
    }

    pub fn free() -> Self {
        Self::new(0, Currency::EUR)
    }

    /// Converts a Cal.com amount (minor units; zero-decimal currencies as-is).
    pub fn from_calcom_minor(minor: i64, currency: Currency) -> Option<Self> {
        let cents = if currency.zero_decimal() {
            minor.checked_mul(100)?
        } else {
            minor
        };
        (0..=MAX_CENTS)
            .contains(&cents)
            .then_some(Self { cents, currency })
    }

    /// Two prices agree when both are free (whatever the currency) or when amount and
    /// currency are equal.
    pub fn same_price(&self, other: &Money) -> bool {
        (self.cents == 0 && other.cents == 0) || self == other
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.cents < 0 { "-" } else { "" };
        let abs = self.cents.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_is_case_insensitive_and_strict() {
        assert_eq!(Currency::parse("eur"), Some(Currency::EUR));
        assert!(Currency::parse("euro").is_none());
        assert!(Currency::parse("e1r").is_none());
    }

    #[test]
    fn calcom_minor_units_normalise() {
        let eur = Currency::EUR;
        assert_eq!(
            Money::from_calcom_minor(9000, eur).unwrap().to_string(),
            "90.00 EUR"
        );
        let jpy = Currency::parse("jpy").unwrap();
        assert_eq!(
            Money::from_calcom_minor(1500, jpy).unwrap().to_string(),
            "1500.00 JPY"
        );
        assert!(Money::from_calcom_minor(-1, eur).is_none());
        assert!(Money::from_calcom_minor(i64::MAX, jpy).is_none());
    }

    #[test]
    fn free_prices_agree_across_currencies() {
        let usd = Currency::parse("usd").unwrap();
        assert!(Money::new(0, usd).same_price(&Money::free()));
        assert!(!Money::new(100, usd).same_price(&Money::new(100, Currency::EUR)));
    }
}
