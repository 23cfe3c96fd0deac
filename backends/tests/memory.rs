//! The conformance suite against `InMemory` (several clients share one `InMemory`).

use eventsync_backends::conformance::Fixture;

eventsync_backends::conformance_tests!(memory, async { Ok::<_, String>(Fixture::memory()) });
