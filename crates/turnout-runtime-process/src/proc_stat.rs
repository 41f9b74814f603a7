//! What `/proc/<pid>/stat` says about a process.
//!
//! This is how the process runtime knows an instance by pid *and* start
//! time, whether or not it is the server's own child: a process started
//! by an earlier server is observed here, never through `waitpid`.

use std::io;

/// The fields of `/proc/<pid>/stat` the runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// The one-letter state (`R`, `S`, `D`, `Z`, ...).
    pub(crate) state: char,
    /// The process group id.
    pub(crate) pgrp: u32,
    /// Start time in clock ticks since boot (field 22).
    pub(crate) start_time: u64,
}

impl ProcStat {
    /// Reads `/proc/<pid>/stat`; `Ok(None)` when there is no such process.
    pub(crate) fn read(pid: u32) -> io::Result<Option<ProcStat>> {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(text) => parse(&text)
                .map(Some)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat line")),
            // ESRCH shows up when the process disappears between open and
            // read.
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(3) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the process and keeps it only if it is the one started at
    /// `start_time`.
    pub(crate) fn read_matching(pid: u32, start_time: u64) -> Option<ProcStat> {
        match ProcStat::read(pid) {
            Ok(Some(stat)) if stat.start_time == start_time => Some(stat),
            _ => None,
        }
    }

    /// Whether the process has exited and waits to be reaped.
    pub(crate) fn is_zombie(&self) -> bool {
        // `X` (dead) is only ever seen in the instant before the entry
        // disappears.
        matches!(self.state, 'Z' | 'X')
    }
}

/// Parses a stat line. The command name (field 2) is in parentheses and
/// may itself hold spaces and parentheses, so fields are counted from the
/// last `)`.
fn parse(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so field N is N - 3.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(5 - 3)?.parse().ok()?,
        start_time: fields.get(22 - 3)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let line = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000000 200 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse(line).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.pgrp, 4242);
        assert_eq!(stat.start_time, 987654);
        assert!(!stat.is_zombie());
    }

    #[test]
    fn refuses_truncated_lines() {
        assert_eq!(parse("1 (init) S 0 1"), None);
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn reads_its_own_process() {
        let me = std::process::id();
        let stat = ProcStat::read(me).unwrap().unwrap();
        assert!(stat.start_time > 0);
        // The state may change between two reads (running, sleeping).
        let again = ProcStat::read_matching(me, stat.start_time).expect("the same process");
        assert_eq!((again.pgrp, again.start_time), (stat.pgrp, stat.start_time));
        assert_eq!(ProcStat::read_matching(me, stat.start_time + 1), None);
    }
}
