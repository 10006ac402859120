//! The driver end to end with the test double: output shape, check mode, diff, no_log,
//! failures, verification.

use kvmnet_protocol::testing::{run_module, FakeRunner};
use kvmnet_protocol::{Action, Ctx, Diff, Error, Module, Opt, Output, Plan, Result, Spec};
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
    type State = i64;
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
    fn query(ctx: &mut Ctx, p: &P) -> Result<i64> {
        let out = ctx.read(&["ip", "-j", "link", "show", p.name.as_str()])?;
        let v: Value = serde_json::from_str(&out.stdout)?;
        v[0]["mtu"].as_i64().ok_or_else(|| Error::bug("no mtu"))
    }
    fn plan(_ctx: &mut Ctx, p: &P, cur: &i64) -> Result<Plan> {
        let mut plan = Plan::default();
        let want = p.mtu.unwrap_or(*cur);
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
    fn verify(ctx: &mut Ctx, p: &P, plan: &mut Plan) -> Result<()> {
        let now = Self::query(ctx, p)?;
        if Some(now) != p.mtu {
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
        j["changed"], true,
        "a write was attempted: the host may have changed"
    );
    assert_eq!(j["commands"], json!([SET]));
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
    assert_eq!(r.json["msg"], "link ens32: mtu is 1500 after the change");
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
