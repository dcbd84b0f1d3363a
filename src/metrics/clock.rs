//! One process-wide clock for timestamps stored in atomics: microseconds
//! since the process started (monotonic), convertible to wall-clock time.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Start {
    instant: Instant,
    wall: SystemTime,
    /// `CLOCK_MONOTONIC` in nanoseconds when `instant` was taken (the clock
    /// `Instant` reads on Linux).
    mono_ns: u64,
}

fn start() -> &'static Start {
    static START: OnceLock<Start> = OnceLock::new();
    START.get_or_init(|| Start {
        instant: Instant::now(),
        wall: SystemTime::now(),
        mono_ns: mono_ns(),
    })
}

/// `CLOCK_MONOTONIC` in nanoseconds, read without `Instant`'s checked
/// arithmetic (several readings per transaction: this is on the hot path).
#[allow(unsafe_code)]
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on
    // every platform pgferry builds for, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.wrapping_mul(1_000_000_000).wrapping_add(nanos)
}

/// Microseconds since the process clock started; never 0 (0 means "unset"
/// in the registries).
pub fn now_us() -> u64 {
    let start = start();
    (mono_ns().saturating_sub(start.mono_ns) / 1000).max(1)
}

/// `at` on the process clock (see [`now_us`]).
pub fn us_at(at: Instant) -> u64 {
    let d = at.saturating_duration_since(start().instant);
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
        .max(1)
}

/// Microseconds elapsed since `us` (a [`now_us`] value).
pub fn since_us(us: u64) -> u64 {
    now_us().saturating_sub(us)
}

/// Wall-clock seconds since the Unix epoch of a [`now_us`] value.
pub fn unix_secs(us: u64) -> u64 {
    let wall = start().wall + Duration::from_micros(us);
    wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// "YYYY-MM-DD HH:MM:SS UTC", the way PgBouncer prints times, of a
/// [`now_us`] value.
pub fn format_utc(us: u64) -> String {
    format_unix(unix_secs(us))
}

/// "YYYY-MM-DD HH:MM:SS UTC" of Unix seconds.
pub fn format_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_unix(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_unix(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn monotonic_and_nonzero() {
        let a = now_us();
        assert!(a >= 1);
        assert!(now_us() >= a);
    }

    #[test]
    fn now_us_and_instants_agree() {
        // The raw clock and `Instant` are the same clock: readings taken in
        // order stay in order across the two ways of reading it.
        for _ in 0..1000 {
            let a = now_us();
            let b = us_at(Instant::now());
            let c = now_us();
            assert!(a <= b + 1 && b <= c + 1, "{a} {b} {c}");
        }
    }
}
