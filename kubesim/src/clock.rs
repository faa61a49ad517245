//! The wall-clock timestamps kubesim writes, formatted once a second rather than for every
//! object, Event and log line (formatting was about 3 % of its CPU under load).

use std::cell::RefCell;

use chrono::{DateTime, Utc};

/// A timestamp's text, kept for the second it names.
struct Cached {
    second: i64,
    text: String,
}

impl Cached {
    const fn empty() -> Self {
        Cached { second: i64::MIN, text: String::new() }
    }

    fn at(cell: &RefCell<Cached>, now: DateTime<Utc>, format: impl FnOnce(DateTime<Utc>) -> String) -> String {
        let mut c = cell.borrow_mut();
        if c.second != now.timestamp() {
            *c = Cached { second: now.timestamp(), text: format(now) };
        }
        c.text.clone()
    }
}

thread_local! {
    static RFC3339: RefCell<Cached> = const { RefCell::new(Cached::empty()) };
    static LOG4J: RefCell<Cached> = const { RefCell::new(Cached::empty()) };
}

/// Now as Kubernetes writes timestamps: RFC 3339, whole seconds, `Z` (`2026-12-04T02:40:00Z`).
pub(crate) fn rfc3339_now() -> String {
    RFC3339.with(|c| Cached::at(c, Utc::now(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

/// Now as Spark's log4j pattern writes it (`26/12/04 02:40:00`).
pub(crate) fn log4j_now() -> String {
    LOG4J.with(|c| Cached::at(c, Utc::now(), |t| t.format("%y/%m/%d %H:%M:%S").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_name_the_current_second_in_their_format() {
        for _ in 0..3 {
            let before = Utc::now().timestamp();
            let (rfc, log4j) = (rfc3339_now(), log4j_now());
            let after = Utc::now().timestamp();
            let parsed = DateTime::parse_from_rfc3339(&rfc).expect("RFC 3339").timestamp();
            assert!((before..=after).contains(&parsed), "{rfc} lies in [{before}, {after}]");
            assert!(rfc.ends_with('Z') && !rfc.contains('.'), "whole seconds in UTC: {rfc}");
            let log4j_parsed = chrono::NaiveDateTime::parse_from_str(&log4j, "%y/%m/%d %H:%M:%S")
                .expect("log4j pattern")
                .and_utc()
                .timestamp();
            assert!((before..=after).contains(&log4j_parsed), "{log4j} lies in [{before}, {after}]");
            std::thread::sleep(std::time::Duration::from_millis(600));
        }
    }
}
