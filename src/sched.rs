//! The CPU scheduling policy pgferry's threads run under (`[proxy]
//! cpu_policy`).
//!
//! Under Linux's default policy a task woken by an event may preempt the
//! task running on its core at once. A pooler is woken by nearly every
//! packet: each wake-up preempts a Postgres backend, pgbench or the
//! application, and the pooler then finds one or two sockets ready. With
//! SCHED_BATCH the kernel gives pgferry the same share of the CPU but no
//! wake-up preemption: it runs when the current task sleeps or its slice
//! ends, and by then more sockets are ready, so each wake-up does more work
//! and the machine switches tasks less. Where a core is idle the woken
//! thread runs at once either way, so a lightly loaded machine sees no
//! difference. No privilege is needed to choose it.
//!
//! `nice` sets the weight the kernel gives pgferry's threads against the
//! other processes on the machine. A pooler that every query passes through
//! and that falls behind stays runnable all the time; the kernel's fair
//! share then treats it like any busy process, and every client waits while
//! it is off the CPU. A lower nice value lets it keep up. Lowering it needs
//! CAP_SYS_NICE (or an RLIMIT_NICE that allows it); 0, the default, leaves
//! whatever value pgferry was started with.

use crate::config::CpuPolicy;

/// Applies `policy` to the calling thread; threads it starts afterwards
/// (the runtime's workers, its blocking pool) inherit it. Call before the
/// runtime is built.
pub fn apply(policy: CpuPolicy) -> Result<(), std::io::Error> {
    match policy {
        CpuPolicy::Normal => Ok(()),
        CpuPolicy::Batch => set_batch(),
    }
}

/// Sets the calling thread's nice value to `nice` (-20 ..= 19); threads it
/// starts afterwards inherit it. 0 changes nothing (an inherited value,
/// e.g. from `nice -n 5 pgferry`, stays).
pub fn apply_nice(nice: i32) -> Result<(), std::io::Error> {
    if nice == 0 {
        return Ok(());
    }
    set_nice(nice)
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_nice(nice: i32) -> Result<(), std::io::Error> {
    // On Linux PRIO_PROCESS with who 0 is the calling thread.
    // SAFETY: plain integer arguments.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_nice: i32) -> Result<(), std::io::Error> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "nice is applied on Linux only",
    ))
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn current_nice() -> Result<i32, std::io::Error> {
    // getpriority may return -1 legitimately: errno tells failure apart.
    // SAFETY: errno is thread-local; plain integer arguments.
    unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS, 0);
        if n == -1 && *libc::__errno_location() != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n)
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_batch() -> Result<(), std::io::Error> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0
    // is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_batch() -> Result<(), std::io::Error> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "SCHED_BATCH exists on Linux only",
    ))
}

/// The calling thread's policy is SCHED_BATCH.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn is_batch() -> bool {
    // SAFETY: no arguments but the calling thread's pid 0.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_BATCH }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn batch_applies_to_the_thread_and_to_threads_it_starts() {
        // In a thread of its own: the test harness's threads keep theirs.
        std::thread::spawn(|| {
            apply(CpuPolicy::Normal).expect("normal is a no-op");
            assert!(!is_batch());
            apply(CpuPolicy::Batch).expect("SCHED_BATCH needs no privilege");
            assert!(is_batch());
            let child = std::thread::spawn(is_batch).join().expect("child thread");
            assert!(child, "a thread started afterwards inherits the policy");
        })
        .join()
        .expect("test thread");
    }

    #[test]
    fn nice_applies_to_the_thread_and_to_threads_it_starts() {
        std::thread::spawn(|| {
            let before = current_nice().expect("getpriority");
            apply_nice(0).expect("0 is a no-op");
            assert_eq!(current_nice().expect("getpriority"), before);
            // Raising the value needs no privilege.
            let higher = (before + 3).min(19);
            apply_nice(higher).expect("raising the nice value");
            assert_eq!(current_nice().expect("getpriority"), higher);
            let child = std::thread::spawn(current_nice)
                .join()
                .expect("child thread")
                .expect("getpriority");
            assert_eq!(child, higher, "a thread started afterwards inherits it");
        })
        .join()
        .expect("test thread");
        // The harness thread kept its own value.
    }
}
