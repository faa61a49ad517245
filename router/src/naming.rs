//! Names: submission ids and Kubernetes label values.

/// BPG's label-value normalisation: characters a label value cannot hold become `0`, the
/// first and last characters must be alphanumeric (else `0`), at most 63 characters.
pub fn normalize_label_value(value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    let mut chars: Vec<char> =
        value.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '0' }).collect();
    if !chars[0].is_ascii_alphanumeric() {
        chars[0] = '0';
    }
    chars.truncate(63);
    let last = chars.len() - 1;
    if !chars[last].is_ascii_alphanumeric() {
        chars[last] = '0';
    }
    chars.into_iter().collect()
}

/// `<cluster>-<32 lowercase hex>[-<suffix>]`. The hex is a version-7 UUID: `now_ms` (the
/// leader's clock) in its first 48 bits, then 74 random bits. Ids submitted close together
/// sort together, so the jobs one batch of applies touches (the new ones, and the recent ones
/// whose status changes) share B-tree pages of the state's tables instead of taking a random
/// page each.
pub fn new_submission_id(cluster: &str, suffix: Option<&str>, now_ms: u64, rng: &mut impl rand::Rng) -> String {
    let mut random = [0u8; 10];
    rng.fill_bytes(&mut random);
    let hex = uuid::Builder::from_unix_timestamp_millis(now_ms, &random).into_uuid().simple().to_string();
    match suffix {
        Some(s) => format!("{cluster}-{hex}-{s}"),
        None => format!("{cluster}-{hex}"),
    }
}

/// A suffix must keep the id a valid object name (BPG does not check; Kubernetes then refuses
/// the object).
pub fn check_suffix(suffix: &str) -> Result<(), String> {
    let ok = suffix.len() <= 63
        && suffix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !suffix.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "submissionIdSuffix {suffix:?} must be at most 63 lowercase letters, digits or '-', not ending in '-'"
        ))
    }
}

/// The cluster a submission id belongs to: the text before the first `-`.
pub fn cluster_of(id: &str) -> Result<&str, String> {
    match id.find('-') {
        Some(i) if i > 0 => Ok(&id[..i]),
        _ => Err(format!("submissionId {id} is invalid")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_normalized_as_bpg_does() {
        assert_eq!(normalize_label_value(" "), "0");
        assert_eq!(normalize_label_value("_0aAzZ_-.9_"), "00aAzZ_-.90");
        assert_eq!(normalize_label_value("SparkPiDemo"), "SparkPiDemo");
        assert_eq!(normalize_label_value("a@b.com"), "a0b.com");
        assert_eq!(normalize_label_value(&"x".repeat(70)).len(), 63);
        assert_eq!(normalize_label_value(""), "");
    }

    #[test]
    fn ids_carry_their_cluster() {
        let id = new_submission_id("clustera", Some("nightly"), 1_764_000_000_000, &mut rand::rng());
        assert!(id.starts_with("clustera-") && id.ends_with("-nightly") && id.len() == "clustera-".len() + 32 + 8);
        assert_eq!(cluster_of(&id), Ok("clustera"));
        assert!(cluster_of("nodash").is_err());
        assert!(cluster_of("-x").is_err());
        assert!(check_suffix("Bad_Suffix").is_err());
        assert!(check_suffix("ok-1").is_ok());
    }

    #[test]
    fn ids_sort_by_submission_time_and_stay_unique_within_a_millisecond() {
        let mut rng = rand::rng();
        let ms = 1_764_000_000_000u64;
        let earlier: Vec<String> = (0..1000).map(|_| new_submission_id("clustera", None, ms, &mut rng)).collect();
        let later = new_submission_id("clustera", None, ms + 1, &mut rng);
        assert!(earlier.iter().all(|id| *id < later), "an id of a later millisecond sorts after every earlier one");
        let distinct: std::collections::HashSet<&String> = earlier.iter().collect();
        assert_eq!(distinct.len(), earlier.len(), "ids of one millisecond differ");
        let hex = &later["clustera-".len()..];
        assert!(hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{hex}");
        assert_eq!(&hex[12..13], "7", "a version-7 UUID");
        assert_eq!(u64::from_str_radix(&hex[..12], 16).unwrap(), ms + 1, "the time is the leader's clock");
    }
}
