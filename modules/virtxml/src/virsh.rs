//! Several virsh commands in one process: virsh reads `cmd1 ; cmd2` from one argument
//! (its own tokenizer, not a shell). Each command's output is separated by an `echo`
//! marker; virsh goes on after a failing command, so a failed command shows as an empty
//! section and its error is in stderr. virsh's exit status is the LAST command's only.
//! Under `-q` virsh's `echo` prints no newline (measured on virsh 9.0): the marker is
//! glued to the next section's first line, so sections are split on the bare marker.

use kvmnet_protocol::{Ctx, Error, ErrorKind, Output, Result};

const MARK: &str = "@@kvmnet-section@@";

/// Quote one argument for virsh's command-string tokenizer.
pub fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// The single command string for a batch of commands (each an argv).
pub fn batch_script(cmds: &[Vec<String>]) -> String {
    cmds.iter()
        .map(|c| c.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(&format!(" ; echo {MARK} ; "))
}

/// Split the batch's stdout back into one section per command.
pub fn split_sections(stdout: &str, n: usize) -> Vec<String> {
    let mut parts: Vec<String> = stdout.split(MARK).map(str::to_string).collect();
    parts.resize(n, String::new());
    parts
}

/// The argv that runs `cmds` against `uri` in one virsh process.
pub fn batch_argv(uri: &str, cmds: &[Vec<String>]) -> Vec<String> {
    vec![
        "virsh".into(),
        "-q".into(),
        "-c".into(),
        uri.into(),
        batch_script(cmds),
    ]
}

/// Turn virsh's error text into our error kinds: an unreachable libvirtd is a missing
/// dependency with a clear message.
pub fn classify(argv: &[String], out: &Output) -> Error {
    let err = out.stderr.trim();
    if err.contains("Failed to connect") || err.contains("failed to connect to the hypervisor") {
        return Error::missing_dependency(format!(
            "libvirtd is not reachable at {}: {}",
            argv.get(3).map(String::as_str).unwrap_or("?"),
            err.lines().last().unwrap_or(err)
        ));
    }
    kvmnet_protocol::runner::command_failed(argv, out)
}

/// Run `cmds` in one virsh process; returns each command's stdout section and the whole
/// stderr. Fails only when virsh itself could not run or connect.
pub fn run_batch(ctx: &mut Ctx, uri: &str, cmds: &[Vec<String>]) -> Result<(Vec<String>, String)> {
    let argv = batch_argv(uri, cmds);
    let out = ctx.read_any(&argv)?;
    if out.rc != 0 && out.stdout.is_empty() {
        let e = classify(&argv, &out);
        if e.kind == ErrorKind::MissingDependency || cmds.len() == 1 {
            return Err(e);
        }
    }
    Ok((split_sections(&out.stdout, cmds.len()), out.stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn script_quotes_every_argument() {
        let s = batch_script(&[
            v(&["net-dumpxml", "--inactive", "it's; x"]),
            v(&["net-info", "n"]),
        ]);
        assert_eq!(
            s,
            format!("'net-dumpxml' '--inactive' 'it'\\''s; x' ; echo {MARK} ; 'net-info' 'n'")
        );
    }

    #[test]
    fn sections_split_and_pad() {
        // As `virsh -q` 9.0 prints it: echo adds no newline, a failed command nothing.
        let out = format!("<network/>\n{MARK}{MARK}Name: x\n");
        let s = split_sections(&out, 3);
        assert_eq!(s, vec!["<network/>\n", "", "Name: x\n"]);
        assert_eq!(split_sections("", 2), vec!["", ""]);
    }
}
