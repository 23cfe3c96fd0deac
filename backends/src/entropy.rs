//! [`Entropy`]: the one place eventsync draws random bits from.
//!
//! Why a type of its own: writer nonces, backend ids, client and session ids and retry
//! jitter are all random, and a simulation that replays a seed needs every one of them to
//! come from that seed. So nothing in eventsync calls the OS generator directly (the
//! workspace's `clippy.toml` forbids it); it draws from an `Entropy` it was given. A real
//! client uses [`Entropy::from_os`] (the default); a simulation gives each actor
//! [`Entropy::seeded`], or [`Entropy::fork`]s one root.
//!
//! The time half of determinism needs no type here: eventsync reads time only through
//! `tokio::time`, whose clock a test pauses and advances (`start_paused`), and never the
//! wall clock.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// A shared random generator: seeded from the OS, or from a seed for a replayable run.
///
/// Cheap to clone; clones draw from one stream, so they never repeat each other.
#[derive(Clone)]
pub struct Entropy {
    rng: Arc<Mutex<StdRng>>,
    seed: Option<u64>,
}

impl Entropy {
    /// A generator seeded once from the operating system: what a real client uses.
    #[allow(
        clippy::disallowed_methods,
        reason = "the one sanctioned use of the OS generator"
    )]
    pub fn from_os() -> Entropy {
        Entropy {
            rng: Arc::new(Mutex::new(StdRng::from_os_rng())),
            seed: None,
        }
    }

    /// A generator whose every draw follows from `seed`: the same seed, the same draws.
    pub fn seeded(seed: u64) -> Entropy {
        Entropy {
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
            seed: Some(seed),
        }
    }

    /// The seed, for a seeded generator.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// A new, independent generator seeded from this one: one per actor, so that what one
    /// actor draws does not shift another's stream. Seeded in turn when this one is seeded.
    pub fn fork(&self) -> Entropy {
        let seed = self.next_u64();
        match self.seed {
            Some(_) => Entropy::seeded(seed),
            None => Entropy {
                rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
                seed: None,
            },
        }
    }

    /// 64 random bits.
    pub fn next_u64(&self) -> u64 {
        self.with(|rng| rng.next_u64())
    }

    /// `N` random bytes.
    pub fn bytes<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.with(|rng| rng.fill_bytes(&mut bytes));
        bytes
    }

    /// A number drawn uniformly from `range` (which must not be empty).
    pub fn below(&self, range: Range<u64>) -> u64 {
        self.with(|rng| rng.random_range(range))
    }

    /// `len` random lowercase letters and digits: client ids, session ids, todo ids.
    pub fn alphanumeric(&self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        self.with(|rng| {
            (0..len)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect()
        })
    }

    /// `N` random bytes as `2N` lowercase hex digits: backend ids, probe run ids.
    pub fn hex<const N: usize>(&self) -> String {
        self.bytes::<N>()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// `delay` with "equal jitter": uniform in `[delay / 2, delay]`. Clients that failed
    /// together (an outage, a lost race) then retry spread out instead of in lockstep,
    /// while each still waits at least half its backoff.
    pub fn jitter(&self, delay: Duration) -> Duration {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        let half = micros / 2;
        Duration::from_micros(half + self.below(0..micros - half + 1))
    }

    fn with<T>(&self, draw: impl FnOnce(&mut StdRng) -> T) -> T {
        draw(&mut self.rng.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Default for Entropy {
    /// [`Entropy::from_os`].
    fn default() -> Entropy {
        Entropy::from_os()
    }
}

impl fmt::Debug for Entropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seed {
            Some(seed) => write!(f, "Entropy(seeded {seed})"),
            None => f.write_str("Entropy(os)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_same_seed_draws_the_same() {
        let (a, b) = (Entropy::seeded(42), Entropy::seeded(42));
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_eq!(a.hex::<16>(), b.hex::<16>());
        assert_eq!(a.alphanumeric(8), b.alphanumeric(8));
        assert_ne!(Entropy::seeded(1).next_u64(), Entropy::seeded(2).next_u64());
    }

    #[test]
    fn test_clones_share_one_stream() {
        let a = Entropy::seeded(7);
        let b = a.clone();
        let reference = Entropy::seeded(7);
        let (x, y) = (a.next_u64(), b.next_u64());
        assert_eq!(x, reference.next_u64());
        assert_eq!(y, reference.next_u64());
        assert_ne!(x, y);
    }

    #[test]
    fn test_forks_are_seeded_and_independent() {
        let root = Entropy::seeded(3);
        let (one, two) = (root.fork(), root.fork());
        assert!(one.seed().is_some() && two.seed().is_some());
        assert_ne!(one.seed(), two.seed());
        let again = Entropy::seeded(3);
        assert_eq!(again.fork().next_u64(), one.next_u64());
        assert_eq!(Entropy::from_os().fork().seed(), None);
    }

    #[test]
    fn test_os_generators_differ() {
        assert_ne!(
            Entropy::from_os().hex::<16>(),
            Entropy::from_os().hex::<16>()
        );
    }

    #[test]
    fn test_ids_have_the_asked_shape() {
        let entropy = Entropy::seeded(9);
        let id = entropy.alphanumeric(12);
        assert_eq!(id.len(), 12);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        let hex = entropy.hex::<16>();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn test_jitter_stays_within_half_and_whole() {
        let entropy = Entropy::seeded(5);
        let delay = Duration::from_millis(400);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let jittered = entropy.jitter(delay);
            assert!(jittered >= delay / 2 && jittered <= delay, "{jittered:?}");
            seen.insert(jittered);
        }
        assert!(seen.len() > 100, "jitter spreads: {} distinct", seen.len());
        assert_eq!(entropy.jitter(Duration::ZERO), Duration::ZERO);
    }
}
