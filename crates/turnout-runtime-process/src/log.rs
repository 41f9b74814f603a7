//! Instance log files: where they are, their last lines, and following
//! them as they grow (`turnout logs SERVICE [-f]`).
//!
//! An instance's stdout and stderr are appended to one file in the data
//! dir, never piped through the server, so an instance keeps logging while
//! the server is down and a restart of the instance adds to the same file.

use std::collections::VecDeque;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use turnout_runtime::RuntimeError;

/// How often a follower looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// How much is read from the end at a time when looking for lines.
const TAIL_CHUNK: u64 = 16 * 1024;
/// A line longer than this is cut, so that a program writing no newline
/// cannot make a follower hold its whole output.
const MAX_LINE: usize = 1024 * 1024;

/// The log file of an instance: `<data-dir>/logs/<app>/<instance>.log`.
pub fn log_path(data_dir: &Path, app: &str, instance_id: &str) -> PathBuf {
    data_dir
        .join("logs")
        .join(app)
        .join(format!("{instance_id}.log"))
}

/// The last lines of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Up to the number of lines asked for, oldest first; the last one may
    /// lack its newline (a line being written).
    pub lines: Vec<String>,
    /// The file's length when read: where a [`LogFollower`] goes on.
    pub end: u64,
}

/// Reads the last `n` lines of `path`. A file that does not exist (an
/// instance that has not written yet) has no lines.
pub async fn tail(path: &Path, n: usize) -> Result<Tail, RuntimeError> {
    let error = |source| RuntimeError::ReadLog {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Tail {
                lines: Vec::new(),
                end: 0,
            });
        }
        Err(e) => return Err(error(e)),
    };
    let end = file.metadata().await.map_err(error)?.len();
    if n == 0 {
        return Ok(Tail {
            lines: Vec::new(),
            end,
        });
    }
    // Read backwards until the text holds more than `n` line ends (the
    // one before the first line wanted), or the start of the file.
    let mut start = end;
    let mut text: Vec<u8> = Vec::new();
    loop {
        let ends = text.iter().filter(|&&b| b == b'\n').count();
        // A final newline ends the last line; it does not start another.
        let needed = if text.last() == Some(&b'\n') {
            n + 1
        } else {
            n
        };
        if start == 0 || ends > needed {
            break;
        }
        let from = start.saturating_sub(TAIL_CHUNK);
        let mut chunk = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from)).await.map_err(error)?;
        file.read_exact(&mut chunk).await.map_err(error)?;
        chunk.extend_from_slice(&text);
        text = chunk;
        start = from;
    }
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    let mut lines: Vec<String> = body.split(|&b| b == b'\n').map(line_text).collect();
    if body.is_empty() && start == 0 {
        lines.clear();
    }
    let keep = lines.len().saturating_sub(n);
    lines.drain(..keep);
    Ok(Tail { lines, end })
}

fn line_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

/// Follows a log file from an offset, yielding each complete line written
/// after it, like `tail -f`. It waits for a file that does not exist yet,
/// and starts over when the file is truncated.
#[derive(Debug)]
pub struct LogFollower {
    path: PathBuf,
    pos: u64,
    partial: Vec<u8>,
    ready: VecDeque<String>,
}

impl LogFollower {
    /// Follows `path` from byte `offset` (a [`Tail`]'s `end`, or 0 for the
    /// whole file).
    pub fn new(path: impl Into<PathBuf>, offset: u64) -> LogFollower {
        LogFollower {
            path: path.into(),
            pos: offset,
            partial: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    /// The next line, waiting for it to be written.
    pub async fn next_line(&mut self) -> Result<String, RuntimeError> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(line);
            }
            if !self.read_more().await? {
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        }
    }

    /// Reads what was appended since the last look; false when nothing
    /// was.
    async fn read_more(&mut self) -> Result<bool, RuntimeError> {
        let error = |source| RuntimeError::ReadLog {
            path: self.path.clone(),
            source,
        };
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(error(e)),
        };
        let len = file.metadata().await.map_err(error)?.len();
        if len < self.pos {
            // Truncated (or replaced): what is there now is new.
            self.pos = 0;
            self.partial.clear();
        }
        if len == self.pos {
            return Ok(false);
        }
        file.seek(SeekFrom::Start(self.pos)).await.map_err(error)?;
        let mut buf = Vec::with_capacity((len - self.pos).min(64 * 1024) as usize);
        let read = (&mut file)
            .take(64 * 1024)
            .read_to_end(&mut buf)
            .await
            .map_err(error)?;
        self.pos += read as u64;
        for &b in &buf {
            if b == b'\n' {
                self.ready.push_back(line_text(&self.partial));
                self.partial.clear();
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE {
                    self.ready.push_back(line_text(&self.partial));
                    self.partial.clear();
                }
            }
        }
        Ok(read > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("turnout-runtime-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn log_paths_live_under_the_data_dir() {
        assert_eq!(
            log_path(Path::new("/srv/.turnout"), "hello", "serviceB-v2.1"),
            PathBuf::from("/srv/.turnout/logs/hello/serviceB-v2.1.log")
        );
    }

    #[tokio::test]
    async fn tail_reads_the_last_lines() {
        let dir = temp_dir("tail");
        let path = dir.join("a.log");
        assert_eq!(tail(&path, 5).await.unwrap().lines, Vec::<String>::new());
        let text: String = (1..=5000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let t = tail(&path, 3).await.unwrap();
        assert_eq!(t.lines, vec!["line 4998", "line 4999", "line 5000"]);
        assert_eq!(t.end, text.len() as u64);
        assert_eq!(tail(&path, 100_000).await.unwrap().lines.len(), 5000);
        assert_eq!(tail(&path, 0).await.unwrap().lines, Vec::<String>::new());

        std::fs::write(&path, "a\r\nb\npartial").unwrap();
        assert_eq!(
            tail(&path, 2).await.unwrap().lines,
            vec!["b".to_string(), "partial".to_string()]
        );
        assert_eq!(
            tail(&path, 9).await.unwrap().lines,
            vec!["a", "b", "partial"]
        );
        std::fs::write(&path, "").unwrap();
        assert_eq!(tail(&path, 2).await.unwrap().lines, Vec::<String>::new());
        std::fs::write(&path, "\n\n").unwrap();
        assert_eq!(tail(&path, 5).await.unwrap().lines, vec!["", ""]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_follower_yields_complete_lines_as_they_come() {
        use std::io::Write;
        let dir = temp_dir("follow");
        let path = dir.join("b.log");
        let mut f = LogFollower::new(&path, 0);
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"one\ntw").unwrap();
        assert_eq!(f.next_line().await.unwrap(), "one");
        file.write_all(b"o\nthree\n").unwrap();
        assert_eq!(f.next_line().await.unwrap(), "two");
        assert_eq!(f.next_line().await.unwrap(), "three");
        // Truncation starts over.
        std::fs::write(&path, "fresh\n").unwrap();
        assert_eq!(f.next_line().await.unwrap(), "fresh");

        let t = tail(&path, 10).await.unwrap();
        let mut g = LogFollower::new(&path, t.end);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"after\n").unwrap();
        assert_eq!(g.next_line().await.unwrap(), "after");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
