//! The per-host lock: two kvmnet modules running at once on one host take turns.

use crate::ctx::Ctx;
use crate::error::{Error, ErrorKind, Result};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Take the lock, waiting at most `wait` on `ctx`'s clock (the test double's never
    /// sleeps for real).
    pub fn acquire(ctx: &mut Ctx, path: &Path, wait: Duration) -> Result<HostLock> {
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
        let start = ctx.now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(HostLock {
                        _file: file,
                        path: path.to_path_buf(),
                    })
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    if ctx.now().saturating_sub(start) >= wait {
                        return Err(Error::new(
                            ErrorKind::Busy,
                            format!(
                                "another kvmnet module held the host lock {} for more than {} s; try again",
                                path.display(),
                                wait.as_secs()
                            ),
                        ));
                    }
                    ctx.sleep(Duration::from_millis(20));
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

    use crate::testing::FakeRunner;

    #[test]
    fn second_holder_waits_then_fails_clearly() {
        // A real lock file, the test double's clock: the second holder waits its 60 s
        // (3000 rounds of 20 ms, none slept for real), then gives up.
        let dir = std::env::temp_dir().join(format!("kvmnet-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kvmnet.lock");
        let mut ctx = Ctx::new(Default::default(), Box::new(FakeRunner::new()));
        let first = HostLock::acquire(&mut ctx, &path, DEFAULT_WAIT).unwrap();
        let before = ctx.now();
        let e = HostLock::acquire(&mut ctx, &path, DEFAULT_WAIT).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Busy);
        assert!(e.msg.contains("for more than 60 s"), "{}", e.msg);
        assert_eq!(ctx.now() - before, DEFAULT_WAIT);
        drop(first);
        assert!(HostLock::acquire(&mut ctx, &path, DEFAULT_WAIT).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
