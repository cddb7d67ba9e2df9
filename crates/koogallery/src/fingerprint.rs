//! The device fingerprint of the License client SDK (`devInfo`, and `deviceFingerprint` in
//! `getLicenseAsync`), license.md §7.2:
//!
//! ```text
//! fingerprint = upper( MAC + "|" + DISK + "|" + BOARD + "|" + CPU )
//! ```
//!
//! Several MACs or disks are joined with `,`; a missing item is the empty string (the `|`
//! separators stay).

use std::fmt;

use crate::error::FieldError;
use crate::model::max_len;

/// The most a fingerprint may hold: 5 KB (license.md §7.2), which is also what `getLicenseAsync`
/// accepts although its table says String(1024) (license.md §8 #7).
pub const MAX_FINGERPRINT_LEN: usize = 5 * 1024;

/// The hardware identifiers a fingerprint is built from (license.md §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// MAC address(es).
    pub macs: Vec<String>,
    /// Disk serial number(s).
    pub disks: Vec<String>,
    /// Mainboard serial; empty when unknown.
    pub board: String,
    /// CPU serial; empty when unknown.
    pub cpu: String,
}

impl DeviceInfo {
    /// The fingerprint string (license.md §7.2).
    pub fn fingerprint(&self) -> String {
        device_fingerprint(&self.macs, &self.disks, &self.board, &self.cpu)
    }

    /// Splits a fingerprint back into its parts: exactly four `|`-separated parts, the first two
    /// `,`-separated lists (an empty part is an empty list). Values are kept as received (upper
    /// case when built by [`device_fingerprint`]). A hardware ID that is not in this form is
    /// still a valid `deviceFingerprint`; only this split fails.
    pub fn parse(fingerprint: &str) -> Result<Self, FieldError> {
        const FIELD: &str = "deviceFingerprint";
        max_len(FIELD, fingerprint, MAX_FINGERPRINT_LEN)?;
        let parts: Vec<&str> = fingerprint.split('|').collect();
        let [macs, disks, board, cpu] = parts.as_slice() else {
            return Err(FieldError::invalid(
                FIELD,
                "must have the form MAC|DISK|BOARD|CPU",
            ));
        };
        let list = |part: &str| -> Vec<String> {
            if part.is_empty() {
                Vec::new()
            } else {
                part.split(',').map(str::to_owned).collect()
            }
        };
        Ok(Self {
            macs: list(macs),
            disks: list(disks),
            board: (*board).to_owned(),
            cpu: (*cpu).to_owned(),
        })
    }
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

/// Builds the fingerprint `upper(MACS|DISKS|BOARD|CPU)` (license.md §7.2), lists joined with `,`.
pub fn device_fingerprint<M: AsRef<str>, D: AsRef<str>>(
    macs: &[M],
    disks: &[D],
    board: &str,
    cpu: &str,
) -> String {
    let text = [join(macs), join(disks), board.to_owned(), cpu.to_owned()].join("|");
    text.to_uppercase()
}

fn join<T: AsRef<str>>(items: &[T]) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp_001_published_example() {
        let fp = device_fingerprint(
            &["04:7c:16:5e:e3:5d"],
            &["001b_444a_488b_5cec."],
            "",
            "bfebfbff00090672",
        );
        assert_eq!(
            fp,
            "04:7C:16:5E:E3:5D|001B_444A_488B_5CEC.||BFEBFBFF00090672"
        );
    }

    #[test]
    fn fp_002_several_macs_and_disks() {
        let info = DeviceInfo {
            macs: vec![
                "00:1a:2b:3c:4d:5e".to_owned(),
                "00:1a:2b:3c:4d:5f".to_owned(),
            ],
            disks: vec!["s4ewnx0n123456".to_owned(), "wd-wx31a12b3456".to_owned()],
            board: "pm1lb0a8j1234".to_owned(),
            cpu: "bfebfbff000906ea".to_owned(),
        };
        let expected = "00:1A:2B:3C:4D:5E,00:1A:2B:3C:4D:5F|S4EWNX0N123456,WD-WX31A12B3456|PM1LB0A8J1234|BFEBFBFF000906EA";
        assert_eq!(info.fingerprint(), expected);
        assert_eq!(info.to_string(), expected);
    }

    #[test]
    fn missing_items_keep_their_separators() {
        let none: [&str; 0] = [];
        assert_eq!(device_fingerprint(&none, &none, "", ""), "|||");
        assert_eq!(device_fingerprint(&none, &["d"], "", "c"), "|D||C");
    }

    #[test]
    fn parse_inverts_the_upper_cased_form() {
        let parsed =
            DeviceInfo::parse("04:7C:16:5E:E3:5D|001B_444A_488B_5CEC.||BFEBFBFF00090672").unwrap();
        assert_eq!(parsed.macs, ["04:7C:16:5E:E3:5D"]);
        assert_eq!(parsed.disks, ["001B_444A_488B_5CEC."]);
        assert_eq!(parsed.board, "");
        assert_eq!(parsed.cpu, "BFEBFBFF00090672");
        let two = "00:1A:2B:3C:4D:5E,00:1A:2B:3C:4D:5F|S4EWNX0N123456,WD-WX31A12B3456|PM1LB0A8J1234|BFEBFBFF000906EA";
        let parsed = DeviceInfo::parse(two).unwrap();
        assert_eq!(parsed.macs.len(), 2);
        assert_eq!(parsed.fingerprint(), two);
        assert_eq!(DeviceInfo::parse("|||").unwrap(), DeviceInfo::default());
    }

    #[test]
    fn parse_rejects_other_forms() {
        let e = DeviceInfo::parse("8******6034e2*****60e1").unwrap_err();
        assert!(e.to_string().starts_with("deviceFingerprint"), "{e}");
        assert!(DeviceInfo::parse("a|b|c|d|e").is_err());
        let e = DeviceInfo::parse(&format!("{}|||", "A".repeat(MAX_FINGERPRINT_LEN))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "deviceFingerprint is longer than 5120 characters"
        );
    }
}
