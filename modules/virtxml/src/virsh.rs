//! Several virsh commands in one process: virsh reads `cmd1 ; cmd2` from one argument
//! (its own tokenizer, not a shell). Each command's output is separated by an `echo`
//! marker; virsh goes on after a failing command, so a failed command shows as an empty
//! section and its error is in stderr. virsh's exit status is the LAST command's only.
//! Under `-q` virsh's `echo` prints no newline (measured on virsh 9.0): the marker is
//! glued to the next section's first line, so sections are split on the bare marker.
//! The marker is random per batch: a name or description that contains text like it
//! cannot be taken for a section boundary.
//!
//! Every name reaches virsh as the value of a named option (`--network NAME`,
//! `--domain NAME`), never as a bare argument, so a name like `--domain=vm1` is a name.

use kvmnet_protocol::{Ctx, Error, ErrorKind, Output, Result};

/// The section marker for a batch, from random hex (`Ctx::random_hex`).
pub fn marker(hex: &str) -> String {
    format!("@@kvmnet-{hex}@@")
}

/// Random bytes in a marker (hex digits: twice as many).
pub const MARKER_BYTES: usize = 16;

/// Quote one argument for virsh's command-string tokenizer.
pub fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// The single command string for a batch of commands (each an argv).
pub fn batch_script(cmds: &[Vec<String>], mark: &str) -> String {
    cmds.iter()
        .map(|c| c.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(&format!(" ; echo {mark} ; "))
}

/// Split the batch's stdout back into one section per command.
pub fn split_sections(stdout: &str, n: usize, mark: &str) -> Vec<String> {
    let mut parts: Vec<String> = stdout.split(mark).map(str::to_string).collect();
    parts.resize(n, String::new());
    parts
}

/// The argv that runs `cmds` against `uri` in one virsh process.
pub fn batch_argv(uri: &str, cmds: &[Vec<String>], mark: &str) -> Vec<String> {
    vec![
        "virsh".into(),
        "-q".into(),
        "-c".into(),
        uri.into(),
        batch_script(cmds, mark),
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
    let mark = marker(&ctx.random_hex(MARKER_BYTES)?);
    let argv = batch_argv(uri, cmds, &mark);
    let out = ctx.read_any(&argv)?;
    if out.rc != 0 && out.stdout.is_empty() {
        let e = classify(&argv, &out);
        if e.kind == ErrorKind::MissingDependency || cmds.len() == 1 {
            return Err(e);
        }
    }
    Ok((split_sections(&out.stdout, cmds.len(), &mark), out.stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    const MARK: &str = "@@kvmnet-00@@";

    #[test]
    fn script_quotes_every_argument() {
        let s = batch_script(
            &[
                v(&["net-dumpxml", "--inactive", "--network", "it's; x"]),
                v(&["net-info", "--network", "n"]),
            ],
            MARK,
        );
        assert_eq!(
            s,
            format!("'net-dumpxml' '--inactive' '--network' 'it'\\''s; x' ; echo {MARK} ; 'net-info' '--network' 'n'")
        );
    }

    #[test]
    fn sections_split_and_pad() {
        // As `virsh -q` 9.0 prints it: echo adds no newline, a failed command nothing.
        let out = format!("<network/>\n{MARK}{MARK}Name: x\n");
        let s = split_sections(&out, 3, MARK);
        assert_eq!(s, vec!["<network/>\n", "", "Name: x\n"]);
        assert_eq!(split_sections("", 2, MARK), vec!["", ""]);
    }

    #[test]
    fn a_marker_inside_a_name_or_description_is_data() {
        // Another run's marker (or the old fixed one) in the output is not a boundary.
        let out = format!(
            "<network><name>m@@kvmnet-section@@</name><description>@@kvmnet-ff@@</description></network>\n{MARK}Name: m@@kvmnet-section@@\n"
        );
        let s = split_sections(&out, 2, MARK);
        assert!(s[0].contains("<name>m@@kvmnet-section@@</name>"));
        assert_eq!(s[1], "Name: m@@kvmnet-section@@\n");
    }
}
