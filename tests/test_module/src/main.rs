//! kvmnet_test: a test-only module built on the protocol library. It manages one small
//! file (`path`, under a test's temporary directory) so that end-to-end tests can run a
//! real `ansible-playbook` with check mode, diff, no_log, coercions and failures without
//! touching the machine's network. Never shipped in the collection.

use kvmnet_protocol::{Action, Ctx, Diff, Env, Error, Module, Opt, Result, Spec};

type Plan = kvmnet_protocol::Plan<(), Action>;
use serde::Deserialize;
use serde_json::json;

struct TestModule;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Params {
    path: String,
    content: Option<String>,
    state: String,
    count: Option<i64>,
    enabled: Option<bool>,
    items: Option<Vec<String>>,
    mode: Option<String>,
    mac: Option<String>,
    secret: Option<String>,
    crash: bool,
}

impl Module for TestModule {
    const NAME: &'static str = "kvmnet_test";
    type Params = Params;
    type Current = Option<String>;
    type Desired = ();
    type Action = Action;

    fn spec() -> Spec {
        Spec::new()
            .opt(Opt::str("path").required())
            .opt(Opt::str("content"))
            .opt(
                Opt::str("state")
                    .choices(&["present", "absent"])
                    .default("present"),
            )
            .opt(Opt::int("count"))
            .opt(Opt::bool("enabled"))
            .opt(Opt::list("items"))
            .opt(
                Opt::str("mode")
                    .choices(&["bridge", "private", "vepa", "passthrough"])
                    .choice_alias("passthru", "passthrough"),
            )
            .opt(Opt::str("mac").alias("mac_address"))
            .opt(Opt::str("secret").no_log())
            .opt(Opt::bool("crash").default(false))
            .required_if("state", "present", &["content"])
    }

    fn validate(p: &Params) -> Result<()> {
        if !p.path.starts_with("/tmp/") {
            return Err(Error::invalid(format!(
                "option 'path': '{}' is outside /tmp; this test module only touches test files",
                p.path
            )));
        }
        if p.crash {
            panic!("crash requested by the test");
        }
        Ok(())
    }

    fn read(ctx: &mut Ctx, p: &Params) -> Result<Option<String>> {
        Ok(ctx.read_file(&p.path))
    }

    fn plan(_env: &mut Env, p: &Params, cur: &Option<String>) -> Result<Plan> {
        let mut plan = Plan::new(());
        let header = format!("file {}", p.path);
        match (p.state.as_str(), cur) {
            ("present", _) => {
                let want = p.content.clone().unwrap_or_default();
                if cur.as_deref() != Some(want.as_str()) {
                    plan.push(
                        Action::new(format!("write {}", p.path), ["tee", p.path.as_str()])
                            .with_stdin(want.clone()),
                    );
                    plan.diffs.push(Diff::new(
                        header,
                        cur.clone().unwrap_or_default(),
                        want.clone(),
                    ));
                }
            }
            (_, Some(old)) => {
                plan.push(Action::new(
                    format!("remove {}", p.path),
                    ["rm", "-f", p.path.as_str()],
                ));
                plan.diffs.push(Diff::new(header, old.clone(), ""));
            }
            _ => {}
        }
        plan.set(
            "file",
            json!({"path": p.path, "count": p.count, "enabled": p.enabled, "items": p.items,
                   "mode": p.mode, "mac": p.mac, "secret_given": p.secret.is_some()}),
        );
        Ok(plan)
    }

    fn verify(ctx: &mut Ctx, p: &Params, _plan: &mut Plan) -> Result<()> {
        let now = Self::read(ctx, p)?;
        let ok = match p.state.as_str() {
            "present" => now == p.content,
            _ => now.is_none(),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::verification(format!(
                "{} is not as requested after the change",
                p.path
            )))
        }
    }
}

fn main() {
    kvmnet_protocol::run::<TestModule>()
}
