//! The driver end to end with the test double: output shape, check mode, diff, no_log,
//! failures, verification.

use kvmnet_protocol::testing::{run_module, FakeRunner};
use kvmnet_protocol::{Action, Ctx, Diff, Env, Error, Module, Opt, Output, Plan, Result, Spec};
use serde::Deserialize;
use serde_json::{json, Value};

/// A toy module: keeps a "link" whose MTU is read with `ip` and set with `ip link set`.
struct Toy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // token and state only exercise validation and masking
struct P {
    name: String,
    mtu: Option<i64>,
    token: Option<String>,
    state: String,
}

impl Module for Toy {
    const NAME: &'static str = "toy";
    type Params = P;
    type Current = i64;
    type Desired = i64;
    type Action = Action;
    fn spec() -> Spec {
        Spec::new()
            .opt(Opt::str("name").required())
            .opt(Opt::int("mtu"))
            .opt(Opt::str("token").no_log())
            .opt(
                Opt::str("state")
                    .choices(&["present", "absent"])
                    .default("present"),
            )
    }
    fn read(ctx: &mut Ctx, p: &P) -> Result<i64> {
        let out = ctx.read(&["ip", "-j", "link", "show", p.name.as_str()])?;
        let v: Value = serde_json::from_str(&out.stdout)?;
        v[0]["mtu"].as_i64().ok_or_else(|| Error::bug("no mtu"))
    }
    fn plan(_env: &mut Env, p: &P, cur: &i64) -> Result<Plan<i64, Action>> {
        let want = p.mtu.unwrap_or(*cur);
        let mut plan = Plan::new(want);
        if want != *cur {
            let mtu = want.to_string();
            plan.push(Action::new(
                format!("set mtu of {} to {want}", p.name),
                ["ip", "link", "set", p.name.as_str(), "mtu", mtu.as_str()],
            ));
        }
        plan.diffs.push(Diff::new(
            format!("link {}", p.name),
            json!({"mtu": cur}),
            json!({"mtu": want}),
        ));
        plan.set("link", json!({"name": p.name, "mtu": want}));
        Ok(plan)
    }
    fn verify(ctx: &mut Ctx, p: &P, plan: &mut Plan<i64, Action>) -> Result<()> {
        let now = Self::read(ctx, p)?;
        if now != plan.desired {
            return Err(Error::verification(format!(
                "link {}: mtu is {now} after the change",
                p.name
            )));
        }
        plan.set("link", json!({"name": p.name, "mtu": now}));
        Ok(())
    }
}

const SHOW: &[&str] = &["ip", "-j", "link", "show", "ens32"];
const SET: &[&str] = &["ip", "link", "set", "ens32", "mtu", "9000"];

fn mtu(n: i64) -> Output {
    Output::ok(&format!(r#"[{{"ifname":"ens32","mtu":{n}}}]"#))
}

#[test]
fn change_runs_plan_verifies_and_reports() {
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": "9000", "_ansible_diff": true}),
        FakeRunner::new()
            .expect(SHOW, mtu(1500))
            .expect(SET, Output::ok(""))
            .expect(SHOW, mtu(9000)),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    let j = &r.json;
    assert_eq!(j["changed"], true);
    assert_eq!(j["failed"], false);
    assert_eq!(j["msg"], "Set mtu of ens32 to 9000");
    assert_eq!(j["commands"], json!([SET]));
    assert_eq!(j["link"], json!({"name": "ens32", "mtu": 9000}));
    assert_eq!(j["diff"]["before"], json!({"mtu": 1500}));
    assert_eq!(j["diff"]["after"], json!({"mtu": 9000}));
    assert_eq!(j["diff"]["before_header"], "link ens32");
    assert_eq!(
        j["invocation"]["module_args"],
        json!({"name": "ens32", "mtu": 9000, "token": null, "state": "present"})
    );
    assert!(j.get("warnings").is_none());
    assert_eq!(r.calls.len(), 3);
}

#[test]
fn check_mode_reports_commands_but_runs_none() {
    // Only the read is expected: a write would hit the double and fail the run.
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 9000, "_ansible_check_mode": true}),
        FakeRunner::new().expect(SHOW, mtu(1500)),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], true);
    assert_eq!(r.json["commands"], json!([SET]));
    assert_eq!(r.json["msg"], "would set mtu of ens32 to 9000");
    assert!(
        r.json.get("diff").is_none(),
        "no diff unless diff mode is on"
    );
    assert_eq!(
        r.calls,
        vec![SHOW.iter().map(|s| s.to_string()).collect::<Vec<_>>()]
    );
}

#[test]
fn no_change_is_not_changed_and_runs_no_write() {
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 1500}),
        FakeRunner::new().expect(SHOW, mtu(1500)),
    );
    assert_eq!(r.json["changed"], false);
    assert_eq!(r.json["commands"], json!([]));
    assert_eq!(r.json["msg"], "already in the requested state");
}

#[test]
fn no_log_masks_every_value_and_no_log_options_always() {
    let r = run_module::<Toy>(
        json!({"name": "ens32", "token": "s3cret", "_ansible_no_log": true}),
        FakeRunner::new().expect(SHOW, mtu(1500)),
    );
    let args = &r.json["invocation"]["module_args"];
    assert_eq!(args["name"], "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER");
    assert_eq!(args["token"], "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER");
    let r = run_module::<Toy>(
        json!({"name": "ens32", "token": "s3cret"}),
        FakeRunner::new().expect(SHOW, mtu(1500)),
    );
    assert_eq!(r.json["invocation"]["module_args"]["name"], "ens32");
    assert_eq!(
        r.json["invocation"]["module_args"]["token"],
        "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    );
    assert!(!r.json.to_string().contains("s3cret"));
}

#[test]
fn bad_option_fails_before_any_command() {
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": "big", "token": "s3cret"}),
        FakeRunner::new(),
    );
    assert_eq!(r.rc, 1);
    assert_eq!(r.json["failed"], true);
    assert_eq!(r.json["changed"], false);
    assert_eq!(r.json["error_kind"], "invalid_argument");
    assert_eq!(
        r.json["msg"],
        "option 'mtu' must be an integer, got string 'big'"
    );
    assert!(r.calls.is_empty());
    // Even a rejected call never echoes a no_log option.
    assert_eq!(
        r.json["invocation"]["module_args"]["token"],
        "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    );
    let r = run_module::<Toy>(json!({"name": "ens32", "colour": "red"}), FakeRunner::new());
    assert!(r.json["msg"]
        .as_str()
        .unwrap()
        .starts_with("Unsupported parameters for (toy) module: colour."));
}

#[test]
fn failed_command_carries_cmd_rc_stderr_and_changed_so_far() {
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 9000}),
        FakeRunner::new().expect(SHOW, mtu(1500)).expect(
            SET,
            Output::fail(2, "Error: mtu greater than device maximum.\n"),
        ),
    );
    assert_eq!(r.rc, 1);
    let j = &r.json;
    assert_eq!(j["error_kind"], "command_failed");
    assert_eq!(j["rc"], 2);
    assert_eq!(j["cmd"], "ip link set ens32 mtu 9000");
    assert!(j["msg"]
        .as_str()
        .unwrap()
        .contains("mtu greater than device maximum"));
    assert_eq!(
        j["changed"], false,
        "the only write failed: nothing changed"
    );
    assert_eq!(j["commands"], json!([]));
    assert_eq!(
        j["msg"],
        "command 'ip link set ens32 mtu 9000' failed (rc 2): Error: mtu greater than device maximum."
    );
}

#[test]
fn verification_failure_is_reported() {
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 9000}),
        FakeRunner::new()
            .expect(SHOW, mtu(1500))
            .expect(SET, Output::ok(""))
            .expect(SHOW, mtu(1500)),
    );
    assert_eq!(r.rc, 1);
    assert_eq!(r.json["error_kind"], "verification_failed");
    assert_eq!(
        r.json["msg"],
        "link ens32: mtu is 1500 after the change. Changed before the failure: set mtu of ens32 to 9000"
    );
    assert_eq!(
        r.json["changed"], true,
        "the write succeeded: the host changed"
    );
}

#[test]
#[should_panic(expected = "expected commands never ran")]
fn the_test_double_fails_a_test_whose_expected_command_never_ran() {
    run_module::<Toy>(
        json!({"name": "ens32", "mtu": 1500}),
        FakeRunner::new()
            .expect(SHOW, mtu(1500))
            .expect(SET, Output::ok("")),
    );
}

/// A module with two steps, for failures midway and roll-backs: sets the MTU, then the
/// alias; `rollback` puts the MTU back when the second step fails.
struct Two;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct P2 {
    name: String,
    rollback: bool,
}

impl Module for Two {
    const NAME: &'static str = "two";
    type Params = P2;
    type Current = ();
    type Desired = ();
    type Action = Action;
    fn spec() -> Spec {
        Spec::new()
            .opt(Opt::str("name").required())
            .opt(Opt::bool("rollback").default(false))
    }
    fn read(_ctx: &mut Ctx, _p: &P2) -> Result<()> {
        Ok(())
    }
    fn plan(_env: &mut Env, p: &P2, _cur: &()) -> Result<Plan<(), Action>> {
        let mut plan = Plan::new(());
        plan.push(Action::new(
            "set mtu",
            ["ip", "link", "set", "dev", p.name.as_str(), "mtu", "9000"],
        ));
        plan.push(Action::new(
            "set alias",
            ["ip", "link", "set", "dev", p.name.as_str(), "alias", "x"],
        ));
        Ok(plan)
    }
    fn apply(ctx: &mut Ctx, p: &P2, _cur: &(), plan: &mut Plan<(), Action>) -> Result<()> {
        ctx.run_planned(&plan.actions[0])?;
        if let Err(e) = ctx.run_planned(&plan.actions[1]) {
            if p.rollback {
                ctx.write(
                    &["ip", "link", "set", "dev", p.name.as_str(), "mtu", "1500"],
                    None,
                )?;
                ctx.rolled_back = true;
                return Err(e.context("setting the alias failed; the MTU was put back"));
            }
            return Err(e);
        }
        Ok(())
    }
}

#[test]
fn a_failure_midway_says_what_was_done_and_what_was_not() {
    let r = run_module::<Two>(
        json!({"name": "ens32"}),
        FakeRunner::new()
            .expect(
                &["ip", "link", "set", "dev", "ens32", "mtu", "9000"],
                Output::ok(""),
            )
            .expect(
                &["ip", "link", "set", "dev", "ens32", "alias", "x"],
                Output::fail(2, "Error: no.\n"),
            ),
    );
    assert_eq!(r.json["failed"], true);
    assert_eq!(r.json["changed"], true);
    assert_eq!(
        r.json["msg"],
        "command 'ip link set dev ens32 alias x' failed (rc 2): Error: no.. Changed before the failure: set mtu. Not done: set alias"
    );
    assert_eq!(
        r.json["commands"],
        json!([["ip", "link", "set", "dev", "ens32", "mtu", "9000"]])
    );
}

#[test]
fn a_rolled_back_run_is_no_change() {
    let r = run_module::<Two>(
        json!({"name": "ens32", "rollback": true}),
        FakeRunner::new()
            .expect(
                &["ip", "link", "set", "dev", "ens32", "mtu", "9000"],
                Output::ok(""),
            )
            .expect(
                &["ip", "link", "set", "dev", "ens32", "alias", "x"],
                Output::fail(2, "Error: no.\n"),
            )
            .expect(
                &["ip", "link", "set", "dev", "ens32", "mtu", "1500"],
                Output::ok(""),
            ),
    );
    assert_eq!(r.json["failed"], true);
    assert_eq!(r.json["changed"], false);
    assert!(r.json["msg"]
        .as_str()
        .unwrap()
        .starts_with("setting the alias failed; the MTU was put back: command"));
}

#[test]
fn no_log_hides_option_values_in_msg_commands_objects_and_diff() {
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 9000, "_ansible_no_log": true, "_ansible_diff": true}),
        FakeRunner::new()
            .expect(SHOW, mtu(1500))
            .expect(SET, Output::ok(""))
            .expect(SHOW, mtu(9000)),
    );
    let text = r.json.to_string();
    assert!(!text.contains("ens32"), "{text}");
    assert!(!text.contains("9000"), "{text}");
    assert_eq!(r.json["msg"], "Set mtu of ******** to ********");
    assert_eq!(
        r.json["commands"],
        json!([["ip", "link", "set", MASK, "mtu", MASK]])
    );
    assert_eq!(r.json["link"], json!({"name": MASK, "mtu": MASK}));
    assert_eq!(r.json["diff"]["after"], json!({"mtu": MASK}));
    assert_eq!(
        r.json["diff"]["before"],
        json!({"mtu": 1500}),
        "not a task value"
    );
    // Without no_log nothing is hidden.
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 1500}),
        FakeRunner::new().expect(SHOW, mtu(1500)),
    );
    assert_eq!(r.json["link"], json!({"name": "ens32", "mtu": 1500}));
}

#[test]
fn no_log_option_values_never_appear_in_failures() {
    let r = run_module::<Toy>(
        json!({"name": "s3cret-link", "token": "s3cret-link"}),
        FakeRunner::new().expect(
            &["ip", "-j", "link", "show", "s3cret-link"],
            Output::fail(1, "Device \"s3cret-link\" does not exist.\n"),
        ),
    );
    assert_eq!(r.json["failed"], true);
    assert!(!r.json.to_string().contains("s3cret"), "{}", r.json);
}

const MASK: &str = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER";

#[test]
fn bounds_are_checked_before_anything_runs() {
    for (args, kind, msg) in [
        (
            json!({"name": "ens32", "mtu": 18446744073709551615u64}),
            "invalid_argument",
            "option 'mtu': 18446744073709551615 is too large for an integer option",
        ),
        (
            json!({"name": "ens32", "mtu": "99999999999999999999"}),
            "invalid_argument",
            "option 'mtu': 99999999999999999999 is too large for an integer option",
        ),
        (
            json!({"name": "ens\u{0}32"}),
            "invalid_argument",
            "option 'name' contains the control character U+0000 at byte 3; names hold no control characters",
        ),
        (
            json!({"name": "ens32\nx"}),
            "invalid_argument",
            "option 'name' contains the control character U+000A at byte 5; names hold no control characters",
        ),
    ] {
        let r = run_module::<Toy>(args, FakeRunner::new());
        assert_eq!(r.json["error_kind"], kind);
        assert_eq!(r.json["msg"], msg);
        assert_eq!(r.json["changed"], false);
        assert!(r.calls.is_empty());
    }
    // A 10 MB value is refused and not echoed back.
    let big = "x".repeat(10 << 20);
    let r = run_module::<Toy>(json!({"name": big}), FakeRunner::new());
    assert_eq!(
        r.json["msg"],
        "option 'name' is 10485760 bytes long; at most 1024"
    );
    assert!(
        r.json.to_string().len() < 2000,
        "the result echoes the value"
    );
}

#[test]
fn names_outside_ascii_need_a_utf8_locale() {
    let r = run_module::<Toy>(
        json!({"name": "brü"}),
        FakeRunner::new().without_utf8_locale(),
    );
    assert_eq!(r.json["error_kind"], "not_supported");
    assert!(r.json["msg"].as_str().unwrap().starts_with(
        "option 'name': 'brü' holds characters outside ASCII, and this host has no UTF-8 C locale"
    ));
    assert!(r.calls.is_empty());
    // With the locale, the name reaches the tools as it is.
    let r = run_module::<Toy>(
        json!({"name": "brü"}),
        FakeRunner::new().expect(&["ip", "-j", "link", "show", "brü"], mtu(1500)),
    );
    assert_eq!(r.json["failed"], false, "{}", r.json);
}

#[test]
fn a_bad_choice_under_task_wide_no_log_does_not_echo_its_value() {
    // The issue's own example: `option 'state': value '<the value>' ...` must not repeat a
    // value of a no_log task.
    let r = run_module::<Toy>(
        json!({"name": "ens32", "state": "s3cret-state", "_ansible_no_log": true}),
        FakeRunner::new(),
    );
    assert_eq!(r.json["failed"], true, "{}", r.json);
    assert_eq!(r.json["error_kind"], "invalid_argument");
    assert!(
        r.json["msg"].as_str().unwrap().contains("'state'"),
        "{}",
        r.json
    );
    assert!(!r.json.to_string().contains("s3cret"), "{}", r.json);
}

#[test]
fn the_double_fails_a_command_given_other_stdin() {
    use kvmnet_protocol::Runner;
    let mut double = FakeRunner::new().expect_stdin(&["tee", "/x"], "want\n", Output::ok(""));
    let argv: Vec<String> = ["tee", "/x"].iter().map(|s| s.to_string()).collect();
    let e = double.run(&argv, Some("other\n")).unwrap_err();
    assert!(e.msg.contains("expected stdin"), "{}", e.msg);
}

/// A read-only module whose plan (wrongly) has a step: the driver refuses to run it.
struct Reporter;

impl Module for Reporter {
    const NAME: &'static str = "reporter";
    const READ_ONLY: bool = true;
    type Params = P;
    type Current = i64;
    type Desired = i64;
    type Action = Action;
    fn spec() -> Spec {
        Toy::spec()
    }
    fn read(ctx: &mut Ctx, p: &P) -> Result<i64> {
        Toy::read(ctx, p)
    }
    fn plan(env: &mut Env, p: &P, cur: &i64) -> Result<Plan<i64, Action>> {
        Toy::plan(env, p, cur)
    }
}

#[test]
fn a_read_only_module_that_plans_a_step_is_a_bug_and_runs_nothing() {
    let r = run_module::<Reporter>(
        json!({"name": "ens32", "mtu": 9000}),
        FakeRunner::new().expect(SHOW, mtu(1500)),
    );
    assert_eq!(r.json["failed"], true, "{}", r.json);
    assert_eq!(r.json["error_kind"], "bug");
    assert_eq!(r.json["changed"], false);
    assert_eq!(r.calls.len(), 1, "only the read: {:?}", r.calls);
}
