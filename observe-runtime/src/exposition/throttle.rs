//! "N since the last line", at most one line per interval: how losses and connection
//! errors that are counted on `/metrics` are also logged without flooding the log.

use std::time::{Duration, Instant};

/// One kind of event's log throttle: when its last line was written and how many events
/// came since.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    since: u64,
}

impl Throttle {
    /// Nothing logged yet: the first event is logged at once.
    pub(crate) const NEW: Throttle = Throttle {
        last: None,
        since: 0,
    };

    /// Notes `n` more events; when a line is due (the first, then at most one per
    /// `interval`), returns how many it reports and starts counting again.
    pub(crate) fn note(&mut self, n: u64, interval: Duration) -> Option<u64> {
        self.since += n;
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < interval) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_due_then_one_per_interval_with_the_count() {
        let mut t = Throttle::NEW;
        assert_eq!(t.note(2, Duration::from_secs(60)), Some(2));
        assert_eq!(t.note(3, Duration::from_secs(60)), None);
        assert_eq!(t.note(4, Duration::from_secs(60)), None);
        assert_eq!(t.note(1, Duration::ZERO), Some(8));
    }
}
