//! D-Bus calls and probes through `Ctx`, end to end with the test double: a toy module
//! that changes a link's MTU inside a "checkpoint" (a D-Bus call before, one after), probes
//! the result in process, and rolls back when the probe says no.

use kvmnet_protocol::testing::{run_case, run_module, FakeRunner};
use kvmnet_protocol::{
    AnsibleFlags, BusCall, BusError, Command, Ctx, Env, Error, Module, Opt, Output, Plan, Result,
    Spec, Step,
};
use serde::Deserialize;
use serde_json::{json, Value};

struct Guarded;

#[derive(Deserialize)]
struct P {
    name: String,
    mtu: i64,
}

#[derive(Debug)]
enum Act {
    Checkpoint(String),
    SetMtu(String, i64),
    Commit,
}

const DEST: &str = "org.example.Net";

fn call(member: &str, args: Vec<Value>) -> BusCall {
    BusCall::new(DEST, "/org/example/Net", DEST, member, args)
}

impl Step for Act {
    fn summary(&self) -> String {
        match self {
            Act::Checkpoint(n) => format!("take a checkpoint of {n}"),
            Act::SetMtu(n, m) => format!("set mtu of {n} to {m}"),
            Act::Commit => "commit the checkpoint".into(),
        }
    }
    fn command(&self) -> Option<Command> {
        match self {
            Act::SetMtu(n, m) => Some(Command::new([
                "ip",
                "link",
                "set",
                n.as_str(),
                "mtu",
                &m.to_string(),
            ])),
            _ => None,
        }
    }
    fn bus_call(&self) -> Option<BusCall> {
        match self {
            Act::Checkpoint(n) => Some(call("Checkpoint", vec![json!([n])])),
            Act::Commit => Some(call("Destroy", vec![json!("<checkpoint>")])),
            Act::SetMtu(..) => None,
        }
    }
}

fn rollback(ctx: &mut Ctx, cp: &str, why: Error) -> Error {
    match ctx.bus_write(&call("Rollback", vec![json!(cp)])) {
        Ok(_) => {
            ctx.rolled_back = true;
            Error::verification(format!("{}; rolled back", why.msg))
        }
        Err(e) => Error::verification(format!("{}; rollback failed: {}", why.msg, e.msg)),
    }
}

impl Module for Guarded {
    const NAME: &'static str = "guarded";
    type Params = P;
    type Current = i64;
    type Desired = String;
    type Action = Act;
    fn spec() -> Spec {
        Spec::new()
            .opt(Opt::str("name").required())
            .opt(Opt::int("mtu").required())
    }
    fn read(ctx: &mut Ctx, p: &P) -> Result<i64> {
        let out = ctx.read(&["ip", "-j", "link", "show", p.name.as_str()])?;
        let v: Value = serde_json::from_str(&out.stdout)?;
        v[0]["mtu"].as_i64().ok_or_else(|| Error::bug("no mtu"))
    }
    fn plan(_env: &mut Env, p: &P, cur: &i64) -> Result<Plan<String, Act>> {
        let mut plan = Plan::new(String::new());
        if p.mtu != *cur {
            plan.push(Act::Checkpoint(p.name.clone()));
            plan.push(Act::SetMtu(p.name.clone(), p.mtu));
            plan.push(Act::Commit);
        }
        Ok(plan)
    }
    fn apply(ctx: &mut Ctx, _p: &P, _c: &i64, plan: &mut Plan<String, Act>) -> Result<()> {
        let steps: Vec<&Act> = plan.actions.iter().collect();
        let reply = ctx.run_bus_step(steps[0], &steps[0].bus_call().unwrap())?;
        let cp = reply[0].as_str().unwrap_or_default().to_string();
        if let Err(e) = ctx.run_planned(steps[1]) {
            return Err(rollback(ctx, &cp, e));
        }
        plan.desired = cp;
        Ok(())
    }
    fn verify(ctx: &mut Ctx, p: &P, plan: &mut Plan<String, Act>) -> Result<()> {
        let cp = plan.desired.clone();
        let ok = ctx.probe(&format!("ping over {}", p.name), || Ok(json!(true)))?;
        if ok != json!(true) {
            return Err(rollback(ctx, &cp, Error::verification("no answer")));
        }
        let commit = call("Destroy", vec![json!(cp)]);
        ctx.run_bus_step(&Act::Commit, &commit).map(drop)
    }
}

const SHOW: &[&str] = &["ip", "-j", "link", "show", "ens32"];
const SET: &[&str] = &["ip", "link", "set", "ens32", "mtu", "9000"];
const CP: &str = "/org/example/Net/Checkpoint/1";

fn mtu(n: i64) -> Output {
    Output::ok(&format!(r#"[{{"ifname":"ens32","mtu":{n}}}]"#))
}

fn args(extra: Value) -> Value {
    let mut a = json!({"name": "ens32", "mtu": 9000});
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

fn record(member: &str, args: Value) -> Value {
    json!([
        "dbus",
        DEST,
        "/org/example/Net",
        format!("{DEST}.{member}"),
        args.to_string()
    ])
}

#[test]
fn bus_calls_run_in_order_with_commands_and_are_reported() {
    let r = FakeRunner::new()
        .expect(SHOW, mtu(1500))
        .expect_bus(
            call("Checkpoint", vec![json!(["ens32"])]),
            Ok(vec![json!(CP)]),
        )
        .expect(SET, Output::ok(""))
        .expect_probe("ping over ens32", json!(true))
        .expect_bus(call("Destroy", vec![json!(CP)]), Ok(vec![]));
    let rep = run_module::<Guarded>(args(json!({})), r);
    assert_eq!(rep.rc, 0, "{}", rep.json);
    assert_eq!(rep.json["changed"], json!(true));
    assert_eq!(
        rep.json["commands"],
        json!([
            record("Checkpoint", json!([["ens32"]])),
            SET,
            record("Destroy", json!([CP]))
        ])
    );
    // Every exchange is in `calls`, the probe too.
    assert_eq!(rep.calls.len(), 5);
    assert_eq!(rep.calls[3], vec!["probe", "ping over ens32"]);
}

#[test]
fn check_mode_shows_the_bus_calls_and_makes_none() {
    let r = FakeRunner::new().expect(SHOW, mtu(1500));
    let rep = run_module::<Guarded>(args(json!({"_ansible_check_mode": true})), r);
    assert_eq!(rep.json["changed"], json!(true), "{}", rep.json);
    assert_eq!(
        rep.json["commands"],
        json!([
            record("Checkpoint", json!([["ens32"]])),
            SET,
            record("Destroy", json!(["<checkpoint>"]))
        ])
    );
    assert_eq!(rep.calls.len(), 1);
}

#[test]
fn a_bus_write_is_refused_in_check_mode_by_construction() {
    let flags = AnsibleFlags {
        check_mode: true,
        ..AnsibleFlags::default()
    };
    let mut ctx = Ctx::new(flags, Box::new(FakeRunner::new()));
    let e = ctx.bus_write(&call("Checkpoint", vec![])).unwrap_err();
    assert!(e.msg.contains("check mode"), "{}", e.msg);
    assert!(ctx.commands.is_empty() && ctx.calls.is_empty());
    // Reads are allowed in check mode (none scripted here: the double refuses it).
    assert!(ctx.bus_read(&call("Get", vec![])).is_err());
}

#[test]
fn an_error_reply_changed_nothing_and_names_the_method() {
    let r = FakeRunner::new().expect(SHOW, mtu(1500)).expect_bus(
        call("Checkpoint", vec![json!(["ens32"])]),
        Err(BusError {
            name: "org.example.Net.Busy".into(),
            message: "ens32 is already in a checkpoint".into(),
        }),
    );
    let rep = run_module::<Guarded>(args(json!({})), r);
    assert_eq!(rep.json["failed"], json!(true));
    assert_eq!(rep.json["changed"], json!(false));
    assert_eq!(
        rep.json["msg"],
        json!("D-Bus call org.example.Net.Checkpoint on /org/example/Net failed: ens32 is already in a checkpoint")
    );
    assert_eq!(rep.json["dbus_error"], json!("org.example.Net.Busy"));
    assert_eq!(rep.json["commands"], json!([]));
}

#[test]
fn a_failure_after_the_checkpoint_is_a_partial_change_unless_rolled_back() {
    // The rollback works: nothing changed.
    let r = FakeRunner::new()
        .expect(SHOW, mtu(1500))
        .expect_bus(
            call("Checkpoint", vec![json!(["ens32"])]),
            Ok(vec![json!(CP)]),
        )
        .expect(SET, Output::ok(""))
        .expect_probe("ping over ens32", json!(false))
        .expect_bus(call("Rollback", vec![json!(CP)]), Ok(vec![json!({})]));
    let rep = run_module::<Guarded>(args(json!({})), r);
    assert_eq!(rep.json["failed"], json!(true));
    assert_eq!(rep.json["changed"], json!(false), "{}", rep.json);
    assert_eq!(rep.json["msg"], json!("no answer; rolled back"));
    // The rollback fails: the run changed the host, and says what it did.
    let r = FakeRunner::new()
        .expect(SHOW, mtu(1500))
        .expect_bus(
            call("Checkpoint", vec![json!(["ens32"])]),
            Ok(vec![json!(CP)]),
        )
        .expect(SET, Output::ok(""))
        .expect_probe("ping over ens32", json!(false))
        .expect_bus(
            call("Rollback", vec![json!(CP)]),
            Err(BusError {
                name: "org.example.Net.Gone".into(),
                message: "no such checkpoint".into(),
            }),
        );
    let rep = run_module::<Guarded>(args(json!({})), r);
    assert_eq!(rep.json["changed"], json!(true), "{}", rep.json);
    let msg = rep.json["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("no answer; rollback failed: D-Bus call org.example.Net.Rollback"),
        "{msg}"
    );
    assert!(msg.contains("Changed before the failure: take a checkpoint of ens32; set mtu of ens32 to 9000. Not done: commit the checkpoint"), "{msg}");
}

#[test]
fn the_double_holds_bus_calls_and_probes_to_their_order_and_arguments() {
    // A bus call where a command is expected, other arguments, a probe of something else.
    let cases = [
        FakeRunner::new().expect_bus(call("Checkpoint", vec![]), Ok(vec![])),
        FakeRunner::new().expect(SHOW, mtu(1500)).expect_bus(
            call("Checkpoint", vec![json!(["ens33"])]),
            Ok(vec![json!(CP)]),
        ),
        FakeRunner::new()
            .expect(SHOW, mtu(1500))
            .expect_bus(
                call("Checkpoint", vec![json!(["ens32"])]),
                Ok(vec![json!(CP)]),
            )
            .expect(SET, Output::ok(""))
            .expect_probe("ping over ens33", json!(true)),
    ];
    for r in cases {
        let rep = run_module::<Guarded>(args(json!({})), r);
        assert_eq!(rep.json["error_kind"], json!("bug"), "{}", rep.json);
        assert!(
            rep.json["msg"]
                .as_str()
                .unwrap()
                .starts_with("test double: expected"),
            "{}",
            rep.json
        );
    }
}

#[test]
#[should_panic(expected = "expected commands never ran")]
fn the_double_fails_a_test_whose_bus_call_never_came() {
    let r = FakeRunner::new()
        .expect(SHOW, mtu(9000))
        .expect_bus(call("Checkpoint", vec![]), Ok(vec![]));
    run_module::<Guarded>(args(json!({})), r);
}

#[test]
fn a_case_folder_scripts_bus_calls_replies_errors_and_probes() {
    let dir = std::env::temp_dir().join(format!("kvmnet-bus-case-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bus = |member: &str, args: Value| {
        json!({"destination": DEST, "path": "/org/example/Net", "interface": DEST,
               "member": member, "args": args})
    };
    let calls = json!([
        {"argv": SHOW, "stdout": r#"[{"ifname":"ens32","mtu":1500}]"#},
        {"bus": bus("Checkpoint", json!([["ens32"]])), "reply": [CP]},
        {"argv": SET},
        {"probe": "ping over ens32", "value": false},
        {"bus": bus("Rollback", json!([CP])), "error": {"name": "org.example.Net.Gone", "message": "gone"}},
    ]);
    std::fs::write(dir.join("args.json"), args(json!({})).to_string()).unwrap();
    std::fs::write(dir.join("calls.json"), calls.to_string()).unwrap();
    std::env::remove_var(kvmnet_protocol::testing::BLESS);
    let err = run_case::<Guarded>(&dir).unwrap_err();
    // No result.json: everything ran as scripted, up to the comparison.
    assert!(err.contains("no result.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
