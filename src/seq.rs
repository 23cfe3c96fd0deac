//! Event sequence numbers: `EventSeq { global, client, generation }`, written `e3`, `e5.1`,
//! `e3r1`, `e0.1r2`.
//!
//! Two notions live side by side, as in LiveStore: the *position* `(global, client)`, used
//! for ordering and head comparisons, and the full *identity*, which adds the rebase
//! generation. A locally rebased `e3r1` and the backend's `e3` share a position.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use eventsync_backends::GlobalSeq;
use serde::{Deserialize, Serialize};

/// The sequence number of an event on the client side.
///
/// `Eq`/`Ord` compare all three fields lexicographically (identity, and the sort order of
/// LiveStore's `compare`); use [`position_cmp`](Self::position_cmp),
/// [`is_after`](Self::is_after) and [`max_position`](Self::max_position) for ordering and
/// head checks, which ignore the generation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct EventSeq {
    /// Position in the backend's total order ([`GlobalSeq::ZERO`] is the root): the
    /// backends' own number, so a synced event's number crosses the boundary unchanged.
    pub global: GlobalSeq,
    /// Position among client-only events committed after `global` (`0` for synced events).
    pub client: u32,
    /// Rebase generation: the client-local epoch of optimistic history this number was
    /// assigned in. Only used to detect stale in-flight pushes.
    pub generation: u32,
}

impl EventSeq {
    /// The root: parent of the first event, head of an empty log.
    pub const ROOT: EventSeq = EventSeq {
        global: GlobalSeq::ZERO,
        client: 0,
        generation: 0,
    };

    /// A synced event's number at generation 0.
    pub const fn global(global: u64) -> EventSeq {
        EventSeq {
            global: GlobalSeq(global),
            client: 0,
            generation: 0,
        }
    }

    /// A number from its three parts.
    pub const fn new(global: u64, client: u32, generation: u32) -> EventSeq {
        EventSeq {
            global: GlobalSeq(global),
            client,
            generation,
        }
    }

    /// The `(global, client)` position, which orders events.
    pub const fn position(self) -> (u64, u32) {
        (self.global.0, self.client)
    }

    /// Compares positions, ignoring the generation.
    pub fn position_cmp(&self, other: &EventSeq) -> Ordering {
        self.position().cmp(&other.position())
    }

    /// Strictly after `other` by position.
    pub fn is_after(&self, other: &EventSeq) -> bool {
        self.position_cmp(other) == Ordering::Greater
    }

    /// At or after `other` by position.
    pub fn is_at_or_after(&self, other: &EventSeq) -> bool {
        self.position_cmp(other) != Ordering::Less
    }

    /// Same position (generation ignored).
    pub fn same_position(&self, other: &EventSeq) -> bool {
        self.position() == other.position()
    }

    /// The later of two numbers by position; `b` on a tie (as LiveStore's `max`).
    pub fn max_position(a: EventSeq, b: EventSeq) -> EventSeq {
        if a.is_after(&b) { a } else { b }
    }

    /// True for a client-only event's number (synced events always have `client == 0`).
    pub const fn is_client_only(self) -> bool {
        self.client > 0
    }

    /// The number and parent of the event that follows `self`, the only way numbers are
    /// assigned (LiveStore's `nextPair`).
    ///
    /// A client-only event takes `client + 1` on the same global, with `self` as parent. A
    /// synced event takes `global + 1, client 0`, and its parent is `self` with client `0`:
    /// synced events skip over the client-only side branch.
    pub fn next_pair(self, client_only: bool, generation: u32) -> SeqPair {
        if client_only {
            SeqPair {
                seq: EventSeq {
                    global: self.global,
                    client: self.client + 1,
                    generation,
                },
                parent: self,
            }
        } else {
            SeqPair {
                seq: EventSeq {
                    global: self.global.next(),
                    client: 0,
                    generation,
                },
                parent: EventSeq {
                    global: self.global,
                    client: 0,
                    generation: self.generation,
                },
            }
        }
    }
}

/// A synced event's number at generation 0 (the number the backend gave it).
impl From<GlobalSeq> for EventSeq {
    fn from(global: GlobalSeq) -> EventSeq {
        EventSeq {
            global,
            client: 0,
            generation: 0,
        }
    }
}

/// A sequence number and its parent, as assigned by [`EventSeq::next_pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqPair {
    /// The new event's number.
    pub seq: EventSeq,
    /// Its parent's number.
    pub parent: EventSeq,
}

impl fmt::Display for EventSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.global.0)?;
        if self.client > 0 {
            write!(f, ".{}", self.client)?;
        }
        if self.generation > 0 {
            write!(f, "r{}", self.generation)?;
        }
        Ok(())
    }
}

/// A string that is not `e{global}[.{client}][r{generation}]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sequence number {input:?}: {reason} (expected e.g. e3, e5.1, e3r1, e0.1r2)")]
pub struct ParseSeqError {
    /// The string that was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for EventSeq {
    type Err = ParseSeqError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ParseSeqError {
            input: input.to_owned(),
            reason,
        };
        let rest = input
            .strip_prefix('e')
            .ok_or_else(|| fail("must start with 'e'"))?;
        let (rest, generation) = match rest.split_once('r') {
            Some((rest, generation)) => (rest, Some(generation)),
            None => (rest, None),
        };
        let (global, client) = match rest.split_once('.') {
            Some((global, client)) => (global, Some(client)),
            None => (rest, None),
        };
        let number = |text: &str, what| -> Result<u64, ParseSeqError> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail(what));
            }
            text.parse::<u64>().map_err(|_| fail("number out of range"))
        };
        let global = number(global, "global part must be digits")?;
        let client = match client {
            Some(text) => u32::try_from(number(text, "client part must be digits")?)
                .map_err(|_| fail("client part out of range"))?,
            None => 0,
        };
        let generation = match generation {
            Some(text) => u32::try_from(number(text, "generation must be digits")?)
                .map_err(|_| fail("generation out of range"))?,
            None => 0,
        };
        Ok(EventSeq {
            global: GlobalSeq(global),
            client,
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_display_and_parse_round_trip() {
        for (text, seq) in [
            ("e0", EventSeq::ROOT),
            ("e3", EventSeq::new(3, 0, 0)),
            ("e5.1", EventSeq::new(5, 1, 0)),
            ("e3r1", EventSeq::new(3, 0, 1)),
            ("e0.1r2", EventSeq::new(0, 1, 2)),
            (
                "e18446744073709551615.4294967295r4294967295",
                EventSeq::new(u64::MAX, u32::MAX, u32::MAX),
            ),
        ] {
            assert_eq!(seq.to_string(), text);
            assert_eq!(text.parse::<EventSeq>().unwrap(), seq);
        }
    }

    #[test]
    fn test_parse_rejects_malformed() {
        for bad in [
            "",
            "e",
            "3",
            "x3",
            "e3.",
            "e.1",
            "e3r",
            "e3.1.2",
            "e3r1r2",
            "e-1",
            "e+1",
            "e3 ",
            " e3",
            "e1.r1",
            "e18446744073709551616",
            "e1.4294967296",
            "e1r4294967296",
            "E3",
            "e3R1",
        ] {
            let err = bad.parse::<EventSeq>().unwrap_err();
            assert_eq!(err.input, bad);
            assert!(err.to_string().contains("invalid sequence number"), "{err}");
        }
    }

    #[test]
    fn test_ordering_ignores_generation_but_identity_does_not() {
        let a = EventSeq::new(3, 0, 0);
        let b = EventSeq::new(3, 0, 1);
        assert!(a.same_position(&b));
        assert_ne!(a, b);
        assert!(!a.is_after(&b) && !b.is_after(&a));
        assert_eq!(
            EventSeq::max_position(a, b),
            b,
            "ties return the second argument"
        );
        assert!(EventSeq::new(3, 1, 0).is_after(&EventSeq::new(3, 0, 7)));
        assert!(EventSeq::new(4, 0, 0).is_after(&EventSeq::new(3, 9, 0)));
    }

    #[test]
    fn test_next_pair_synced_skips_client_branch() {
        let pair = EventSeq::new(5, 2, 1).next_pair(false, 1);
        assert_eq!(pair.seq, EventSeq::new(6, 0, 1));
        assert_eq!(pair.parent, EventSeq::new(5, 0, 1));
    }

    #[test]
    fn test_next_pair_client_only_chains_on_exact_parent() {
        let pair = EventSeq::new(5, 2, 1).next_pair(true, 1);
        assert_eq!(pair.seq, EventSeq::new(5, 3, 1));
        assert_eq!(pair.parent, EventSeq::new(5, 2, 1));
        assert!(pair.seq.is_client_only());
    }
}
