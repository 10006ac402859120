//! The quick read (`Module::read_quick`): a cheaper read that may only confirm that
//! nothing is to change. Its plan is the run's when it changes nothing; anything else (a
//! change, a refusal, an error, a read it cannot make) goes the full way, and nothing of
//! the quick attempt shows in the result.

use kvmnet_protocol::testing::{run_module, FakeRunner};
use kvmnet_protocol::{
    Action, BusCall, BusError, Ctx, Env, Error, Module, Opt, Output, Plan, Result, Spec,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// A toy: a link's MTU, read in full with `ip`, quickly as a D-Bus property.
struct Toy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct P {
    name: String,
    mtu: i64,
}

fn mtu_call(name: &str) -> BusCall {
    BusCall::new(
        "org.example.Links",
        format!("/org/example/Links/{name}"),
        "org.freedesktop.DBus.Properties",
        "Get",
        vec![json!("org.example.Link"), json!("Mtu")],
    )
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
            .opt(Opt::int("mtu").required())
    }
    fn read(ctx: &mut Ctx, p: &P) -> Result<i64> {
        let out = ctx.read(&["ip", "-j", "link", "show", "dev", p.name.as_str()])?;
        let v: Value = serde_json::from_str(&out.stdout)?;
        v[0]["mtu"].as_i64().ok_or_else(|| Error::bug("no mtu"))
    }
    fn read_quick(ctx: &mut Ctx, p: &P) -> Result<Option<i64>> {
        if !ctx.has_bus() {
            return Ok(None);
        }
        let reply = ctx.bus_read(&mtu_call(&p.name))?;
        Ok(reply.first().and_then(Value::as_i64))
    }
    fn plan(env: &mut Env, p: &P, cur: &i64) -> Result<Plan<i64, Action>> {
        if *cur < 68 {
            return Err(Error::invalid(format!("{} has mtu {cur}", p.name)));
        }
        env.warn(format!("planned from mtu {cur}"));
        let mut plan = Plan::new(p.mtu);
        if p.mtu != *cur {
            let mtu = p.mtu.to_string();
            plan.push(Action::new(
                format!("set mtu of {} to {}", p.name, p.mtu),
                [
                    "ip",
                    "link",
                    "set",
                    "dev",
                    p.name.as_str(),
                    "mtu",
                    mtu.as_str(),
                ],
            ));
        }
        plan.set("link", json!({"name": p.name, "mtu": p.mtu}));
        Ok(plan)
    }
}

const SHOW: &[&str] = &["ip", "-j", "link", "show", "dev", "ens32"];
const SET: &[&str] = &["ip", "link", "set", "dev", "ens32", "mtu", "9000"];

fn mtu(n: i64) -> Output {
    Output::ok(&format!(r#"[{{"ifname":"ens32","mtu":{n}}}]"#))
}

#[test]
fn a_quick_read_that_finds_nothing_to_change_is_the_whole_run() {
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 9000}),
        FakeRunner::new().expect_bus(mtu_call("ens32"), Ok(vec![json!(9000)])),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], false);
    assert_eq!(r.json["link"], json!({"name": "ens32", "mtu": 9000}));
    assert_eq!(r.json["warnings"], json!(["planned from mtu 9000"]));
    assert_eq!(r.calls.len(), 1, "{:?}", r.calls);
    assert_eq!(r.calls[0][0], "dbus");
}

#[test]
fn a_change_seen_by_the_quick_read_is_planned_from_the_full_read() {
    // The quick read says 1500; the full read (what the change is made from) says 1400:
    // only the full read's plan and warnings show.
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 9000}),
        FakeRunner::new()
            .expect_bus(mtu_call("ens32"), Ok(vec![json!(1500)]))
            .expect(SHOW, mtu(1400))
            .expect(SET, Output::ok("")),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], true);
    assert_eq!(r.json["commands"], json!([SET]));
    assert_eq!(r.json["warnings"], json!(["planned from mtu 1400"]));
}

#[test]
fn a_refusal_or_an_error_of_the_quick_read_goes_the_full_way() {
    // The quick plan refuses (mtu 0): the full read decides, and finds nothing to change.
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 9000}),
        FakeRunner::new()
            .expect_bus(mtu_call("ens32"), Ok(vec![json!(0)]))
            .expect(SHOW, mtu(9000)),
    );
    assert_eq!(r.json["changed"], false, "{}", r.json);
    assert_eq!(r.json["failed"], false);
    // An error reply: the quick read gives up, the full read runs.
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 9000}),
        FakeRunner::new()
            .expect_bus(
                mtu_call("ens32"),
                Err(BusError {
                    name: "org.freedesktop.DBus.Error.ServiceUnknown".into(),
                    message: "not there".into(),
                }),
            )
            .expect(SHOW, mtu(9000)),
    );
    assert_eq!(r.json["changed"], false, "{}", r.json);
    assert_eq!(r.json["failed"], false);
    // The full read's refusal is the run's.
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 9000}),
        FakeRunner::new()
            .expect_bus(mtu_call("ens32"), Ok(vec![json!(0)]))
            .expect(SHOW, mtu(0)),
    );
    assert_eq!(r.json["failed"], true, "{}", r.json);
    assert_eq!(r.json["msg"], "ens32 has mtu 0");
}

#[test]
fn without_a_bus_there_is_no_quick_read() {
    let r = run_module::<Toy>(
        json!({"name": "ens32", "mtu": 9000}),
        FakeRunner::new().expect(SHOW, mtu(9000)),
    );
    assert_eq!(r.json["changed"], false, "{}", r.json);
    assert_eq!(
        r.calls,
        vec![SHOW.iter().map(|s| s.to_string()).collect::<Vec<_>>()]
    );
}

#[test]
fn calls_made_all_at_once_answer_in_order_and_are_recorded() {
    let (a, b) = (mtu_call("ens32"), mtu_call("ens33"));
    let mut ctx = Ctx::new(
        Default::default(),
        Box::new(
            FakeRunner::new()
                .expect_bus(a.clone(), Ok(vec![json!(1500)]))
                .expect_bus(
                    b.clone(),
                    Err(BusError {
                        name: "org.example.UnknownLink".into(),
                        message: "no ens33".into(),
                    }),
                ),
        ),
    );
    assert!(ctx.has_bus());
    let replies = ctx.bus_read_all(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(replies[0], Ok(vec![json!(1500)]));
    assert_eq!(
        replies[1].as_ref().unwrap_err().name,
        "org.example.UnknownLink"
    );
    assert_eq!(ctx.calls, vec![a.record(), b.record()]);
    assert!(ctx.commands.is_empty());
}
