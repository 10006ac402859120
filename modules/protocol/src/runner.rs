//! The one way modules run external programs: argv vectors (never a shell), a C locale
//! (`C.UTF-8` where the host has it, so names outside ASCII pass through the tools
//! intact), captured stdout/stderr/status. A missing program is its own clear error.

use crate::bus::{Bus, BusCall, BusReply};
use crate::error::{Error, ErrorKind, Result};
use serde_json::Value;
use std::process::{Command, Stdio};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit status; -1 when killed by a signal.
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(stdout: &str) -> Self {
        Output {
            rc: 0,
            stdout: stdout.to_string(),
            stderr: String::new(),
        }
    }
    pub fn fail(rc: i32, stderr: &str) -> Self {
        Output {
            rc,
            stdout: String::new(),
            stderr: stderr.to_string(),
        }
    }
    pub fn success(&self) -> bool {
        self.rc == 0
    }
}

/// Runs one program. The real one spawns it; the test double replays canned outputs.
pub trait Runner {
    /// Run `argv` (optionally with `stdin`) and return its output whatever its exit status.
    fn run(&mut self, argv: &[String], stdin: Option<&str>) -> Result<Output>;
    /// Read a small host file (`/sys`, a NetworkManager keyfile) without spawning anything;
    /// `None` when it does not exist or cannot be read.
    fn read_file(&mut self, path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
    /// The names in directory `dir` (NetworkManager's keyfile folders), sorted; empty when
    /// it does not exist or cannot be read.
    fn list_dir(&mut self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|it| {
                it.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
    /// Whether programs run in a UTF-8 C locale. Without one, the tools print `?` for
    /// every byte outside ASCII, so names outside ASCII cannot be read back.
    fn utf8_locale(&self) -> bool {
        true
    }
    /// `buf.len()` random bytes (markers, UUIDs, MAC addresses). The test double makes
    /// them predictable.
    fn random(&mut self, buf: &mut [u8]) -> Result<()> {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(buf))
            .map_err(|e| Error::bug(format!("cannot read /dev/urandom: {e}")))
    }
    /// Time since the runner was made.
    fn now(&self) -> std::time::Duration;
    fn sleep(&mut self, d: std::time::Duration) {
        std::thread::sleep(d)
    }
    /// Whether D-Bus calls can be made (the module's main handed over a client).
    fn has_bus(&self) -> bool {
        false
    }
    /// Several D-Bus calls that do not depend on each other (see [`Bus::call_all`]).
    fn bus_all(&mut self, calls: &[BusCall]) -> Result<Vec<BusReply>> {
        calls.iter().map(|c| self.bus(c)).collect()
    }
    /// Call a D-Bus method (see [`Bus`]). A runner made without a bus refuses: only the
    /// modules that need the bus link a client.
    fn bus(&mut self, call: &BusCall) -> Result<BusReply> {
        Err(Error::bug(format!(
            "{} was called, but this module was started without a D-Bus client",
            call.method()
        )))
    }
    /// A read of the host made in this process rather than by a program (a network probe
    /// on a socket): the real runner runs `probe`; the test double answers what the case
    /// scripted for `what`, in order with the commands.
    fn probe(&mut self, what: &str, probe: &mut dyn FnMut() -> Result<Value>) -> Result<Value> {
        let _ = what;
        probe()
    }
}

/// Where glibc keeps compiled locales; a UTF-8 C locale is a directory there (Debian,
/// Ubuntu, EL8+ ship one as `C.utf8`).
const UTF8_C_LOCALES: &[&str] = &["/usr/lib/locale/C.utf8", "/usr/lib/locale/C.UTF-8"];

/// The locale commands run in: `C.UTF-8` where the host has it, else plain `C`.
pub fn host_locale() -> &'static str {
    if UTF8_C_LOCALES
        .iter()
        .any(|p| std::path::Path::new(p).is_dir())
    {
        "C.UTF-8"
    } else {
        "C"
    }
}

/// Quote an argv for messages (never for a shell: nothing runs through one).
pub fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The error for a command that exited non-zero: command line, status and stderr.
pub fn command_failed(argv: &[String], out: &Output) -> Error {
    let detail = if out.stderr.trim().is_empty() {
        out.stdout.trim()
    } else {
        out.stderr.trim()
    };
    Error::new(
        ErrorKind::CommandFailed,
        format!(
            "command '{}' failed (rc {}): {}",
            display_argv(argv),
            out.rc,
            detail
        ),
    )
    .with("cmd", display_argv(argv))
    .with("rc", out.rc)
    .with("stdout", out.stdout.clone())
    .with("stderr", out.stderr.clone())
}

/// Spawns real programs, and calls the system bus through the [`Bus`] the module's main
/// handed over (if any).
pub struct SystemRunner {
    /// How many programs this runner started (reported at verbosity >= 3 and by tests).
    pub spawned: usize,
    /// `LC_ALL` for every program (see [`host_locale`]).
    pub locale: &'static str,
    started: std::time::Instant,
    bus: Option<Box<dyn Bus>>,
}

impl Default for SystemRunner {
    fn default() -> Self {
        SystemRunner {
            spawned: 0,
            locale: host_locale(),
            started: std::time::Instant::now(),
            bus: None,
        }
    }
}

impl std::fmt::Debug for SystemRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemRunner")
            .field("spawned", &self.spawned)
            .field("locale", &self.locale)
            .field("bus", &self.bus.is_some())
            .finish()
    }
}

impl SystemRunner {
    /// The runner with a D-Bus client (which connects on its first call).
    pub fn with_bus(mut self, bus: Box<dyn Bus>) -> Self {
        self.bus = Some(bus);
        self
    }
}

/// Ansible's remote shell may lack the sbin directories where `ip` lives.
const SBIN: &[&str] = &[
    "/usr/local/sbin",
    "/usr/sbin",
    "/sbin",
    "/usr/local/bin",
    "/usr/bin",
    "/bin",
];

fn search_path() -> String {
    let mut parts: Vec<String> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    for d in SBIN {
        if !parts.iter().any(|p| p == d) {
            parts.push(d.to_string());
        }
    }
    parts.join(":")
}

impl Runner for SystemRunner {
    fn utf8_locale(&self) -> bool {
        self.locale != "C"
    }

    fn now(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    fn has_bus(&self) -> bool {
        self.bus.is_some()
    }

    fn bus_all(&mut self, calls: &[BusCall]) -> Result<Vec<BusReply>> {
        match self.bus.as_mut() {
            Some(b) => b.call_all(calls),
            None => calls.iter().map(|c| self.bus(c)).collect(),
        }
    }

    fn bus(&mut self, call: &BusCall) -> Result<BusReply> {
        match self.bus.as_mut() {
            Some(b) => b.call(call),
            None => Err(Error::bug(format!(
                "{} was called, but this module was started without a D-Bus client",
                call.method()
            ))),
        }
    }

    fn run(&mut self, argv: &[String], stdin: Option<&str>) -> Result<Output> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| Error::bug("empty command line"))?;
        let path = search_path();
        let exe = if prog.contains('/') {
            Some(std::path::PathBuf::from(prog))
        } else {
            path.split(':')
                .map(|d| std::path::Path::new(d).join(prog))
                .find(|p| p.is_file())
        };
        let exe = exe.filter(|p| p.exists()).ok_or_else(|| {
            Error::missing_dependency(format!(
                "{prog} not found (searched {path}); install it on the managed host"
            ))
        })?;
        let mut cmd = Command::new(&exe);
        cmd.args(args)
            .env("LC_ALL", self.locale)
            .env("LANG", self.locale)
            .env("PATH", &path)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                Error::missing_dependency(format!("cannot run {prog}: {e}"))
            }
            // The program is there but could not be started with these arguments (too
            // long, a NUL byte): nothing ran, nothing changed.
            _ => Error::new(
                ErrorKind::CommandFailed,
                format!("could not start {prog}: {e}"),
            )
            .with("cmd", display_argv(argv)),
        })?;
        self.spawned += 1;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            // A child that exits early closes its stdin; its status tells the story.
            let _ = pipe.write_all(input.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::bug(format!("waiting for {prog}: {e}")))?;
        Ok(Output {
            rc: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn runs_argv_with_c_locale_and_no_shell() {
        let mut r = SystemRunner::default();
        let out = r
            .run(
                &argv(&["sh", "-c", "echo \"$LC_ALL\"; echo err >&2; exit 3"]),
                None,
            )
            .unwrap();
        assert_eq!(out.rc, 3);
        assert_eq!(out.stdout, format!("{}\n", host_locale()));
        assert_eq!(out.stderr, "err\n");
        // An argument with shell metacharacters reaches the program untouched.
        let out = r.run(&argv(&["echo", "a;b $(x) 'c'"]), None).unwrap();
        assert_eq!(out.stdout, "a;b $(x) 'c'\n");
        let out = r.run(&argv(&["cat"]), Some("in\n")).unwrap();
        assert_eq!(out.stdout, "in\n");
        assert_eq!(r.spawned, 3);
    }

    #[test]
    fn missing_program_is_its_own_error() {
        let e = SystemRunner::default()
            .run(&argv(&["kvmnet-no-such-program"]), None)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::MissingDependency);
        assert!(
            e.msg.starts_with("kvmnet-no-such-program not found"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn a_command_that_cannot_start_is_not_a_missing_dependency() {
        let e = SystemRunner::default()
            .run(&argv(&["echo", "a\0b"]), None)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::CommandFailed);
        assert!(e.msg.starts_with("could not start echo:"), "{}", e.msg);
    }

    #[test]
    fn failure_message_names_command_and_stderr() {
        let e = command_failed(
            &argv(&["nmcli", "con", "show", "my br"]),
            &Output::fail(10, "Error: no such connection\n"),
        );
        assert_eq!(
            e.msg,
            "command 'nmcli con show 'my br'' failed (rc 10): Error: no such connection"
        );
        assert_eq!(e.extra["rc"], 10);
    }
}
