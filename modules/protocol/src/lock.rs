//! The per-host lock: two kvmnet modules running at once on one host take turns.

use crate::error::{Error, ErrorKind, Result};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Held until dropped (the kernel releases the flock when the file closes).
#[derive(Debug)]
pub struct HostLock {
    _file: File,
    pub path: PathBuf,
}

/// Where the lock lives: `/run/lock/kvmnet.lock`, or `/run/kvmnet.lock` on hosts
/// without `/run/lock`. `KVMNET_LOCK` overrides it (tests).
pub fn default_path() -> PathBuf {
    if let Ok(p) = std::env::var("KVMNET_LOCK") {
        return PathBuf::from(p);
    }
    if Path::new("/run/lock").is_dir() {
        PathBuf::from("/run/lock/kvmnet.lock")
    } else {
        PathBuf::from("/run/kvmnet.lock")
    }
}

pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

impl HostLock {
    pub fn acquire(path: &Path, wait: Duration) -> Result<HostLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| {
                Error::missing_dependency(format!(
                    "cannot open the host lock {}: {e}",
                    path.display()
                ))
            })?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(HostLock {
                        _file: file,
                        path: path.to_path_buf(),
                    })
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        return Err(Error::new(
                            ErrorKind::Busy,
                            format!(
                                "another kvmnet module held the host lock {} for more than {} s; try again",
                                path.display(),
                                wait.as_secs()
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::missing_dependency(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_then_fails_clearly() {
        let dir = std::env::temp_dir().join(format!("kvmnet-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kvmnet.lock");
        let first = HostLock::acquire(&path, DEFAULT_WAIT).unwrap();
        let e = HostLock::acquire(&path, Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Busy);
        assert!(e.msg.contains("for more than 0 s"), "{}", e.msg);
        drop(first);
        assert!(HostLock::acquire(&path, Duration::from_millis(100)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
