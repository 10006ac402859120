//! Golden cases (tests/cases/) on outputs captured in a lab (NetworkManager 1.42,
//! iproute2 6.1, libvirt 9.0, tests/capture.py), and what does not fit a case folder: a
//! host without the nmcli or virsh program (the test double cannot play a program that
//! is not there; a wrapper around it does).

use super::NetInfo;
use kvmnet_protocol::testing::{first_random_hex, FakeRunner};
use kvmnet_protocol::{run_with, Error, Invocation, Output, Result, Runner};
use serde_json::{json, Value};
use std::time::Duration;

/// Every folder under tests/cases/ (see modules/README.md, "Golden cases").
#[test]
fn golden_cases() {
    kvmnet_protocol::testing::run_cases::<NetInfo>(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cases"
    ));
}

/// The test double on a host where some programs are not installed: starting one fails
/// as the real runner fails (`missing_dependency`), before the double is asked.
struct Without {
    inner: FakeRunner,
    missing: &'static [&'static str],
}

impl Runner for Without {
    fn run(&mut self, argv: &[String], stdin: Option<&str>) -> Result<Output> {
        if self.missing.contains(&argv[0].as_str()) {
            return Err(Error::missing_dependency(format!(
                "{} not found (searched /usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin); install it on the managed host",
                argv[0]
            )));
        }
        self.inner.run(argv, stdin)
    }
    fn read_file(&mut self, path: &str) -> Option<String> {
        self.inner.read_file(path)
    }
    fn random(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.random(buf)
    }
    fn now(&self) -> Duration {
        self.inner.now()
    }
}

const IP: &str = include_str!("../tests/data/lab-full/ip-addr.json");
const NAMES: &str = include_str!("../tests/data/lab-full/virsh-names-networks.out");
const DETAIL: &str = include_str!("../tests/data/lab-full/virsh-detail-networks.out");

fn ip(r: FakeRunner) -> FakeRunner {
    r.expect(&["ip", "-j", "-d", "addr", "show"], Output::ok(IP))
}

fn virsh_networks(r: FakeRunner) -> FakeRunner {
    let mark = kvmnet_virtxml::virsh::marker(&first_random_hex(16));
    let names = kvmnet_virtxml::inventory::names_commands(false);
    let first = kvmnet_virtxml::virsh::batch_argv("qemu:///system", &names, &mark);
    let nets: Vec<String> = NAMES
        .split(&mark)
        .next()
        .unwrap_or("")
        .lines()
        .map(str::to_string)
        .collect();
    let detail = kvmnet_virtxml::inventory::detail_commands(&nets, &[]);
    let second = kvmnet_virtxml::virsh::batch_argv("qemu:///system", &detail, &mark);
    r.expect(&strs(&first), Output::ok(NAMES))
        .expect(&strs(&second), Output::ok(DETAIL))
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn run(args: Value, runner: Without) -> Value {
    let inv = Invocation::parse(&args.to_string()).unwrap();
    run_with::<NetInfo>(inv, Box::new(runner), None).json
}

#[test]
fn without_nmcli_bridges_come_from_the_kernel_with_a_warning() {
    let r = Without {
        inner: ip(FakeRunner::new()),
        missing: &["nmcli"],
    };
    let out = run(json!({"gather": ["bridges"]}), r);
    assert_eq!(out["failed"], false, "{out}");
    assert_eq!(
        out["warnings"][0].as_str().unwrap_or(""),
        "NetworkManager (nmcli) is not installed on this host: bridges and macvtap links are read from the kernel alone, without NetworkManager profiles (their origin and persistence are unknown: null)"
    );
    let bridges = out["ansible_facts"]["kvmnet_net"]["bridges"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = bridges
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    // br9 is only a profile: without NetworkManager nobody knows of it.
    assert_eq!(names, ["br0", "virbr0", "virbr1"]);
    assert_eq!(bridges[0]["origin"], Value::Null);
    assert_eq!(bridges[0]["conn_name"], Value::Null);
    assert_eq!(bridges[0]["networks"], Value::Null, "libvirt was not read");
}

#[test]
fn without_virsh_networks_and_guests_are_left_out_unless_named() {
    let r = Without {
        inner: ip(FakeRunner::new()),
        missing: &["virsh"],
    };
    let out = run(json!({"gather": ["guests"]}), r);
    assert_eq!(out["failed"], true, "{out}");
    assert_eq!(out["error_kind"], "missing_dependency");
    assert!(
        out["msg"]
            .as_str()
            .unwrap_or("")
            .starts_with("virsh not found (searched "),
        "{out}"
    );
    assert!(out["msg"].as_str().unwrap_or("").ends_with(
        "; gather names guests, which libvirt holds (leave gather out to report what a host without libvirt has, with a warning)"
    ));
    // Omitted gather: the host's other parts, and a warning.
    let inner = FakeRunner::new()
        .expect(
            &[
                "nmcli",
                "-t",
                "-f",
                "UUID,TYPE,DEVICE,STATE,FILENAME",
                "con",
                "show",
            ],
            Output::ok(""),
        )
        .expect(&["ip", "-j", "-d", "addr", "show"], Output::ok(IP));
    let out = run(
        json!({}),
        Without {
            inner,
            missing: &["virsh"],
        },
    );
    assert_eq!(out["failed"], false, "{out}");
    assert_eq!(
        out["warnings"],
        json!(["libvirt's virsh is not installed on this host: the facts have no networks and guests (and cannot tell libvirt's bridges and devices from others)"])
    );
    let facts = out["ansible_facts"]["kvmnet_net"].as_object().unwrap();
    assert_eq!(facts.keys().collect::<Vec<_>>(), ["bridges", "macvtaps"]);
}

#[test]
fn networks_alone_start_only_virsh() {
    // The strict double fails on any other command: two virsh processes, no nmcli, no ip.
    let r = Without {
        inner: virsh_networks(FakeRunner::new()),
        missing: &[],
    };
    let out = run(
        json!({"gather": "networks", "_ansible_check_mode": true}),
        r,
    );
    assert_eq!(out["failed"], false, "{out}");
    assert_eq!(out["changed"], false);
    assert_eq!(out["commands"], json!([]));
    let nets = out["ansible_facts"]["kvmnet_net"]["networks"]
        .as_array()
        .unwrap();
    let method = |n: &str| {
        nets.iter()
            .find(|x| x["name"] == n)
            .map(|x| x["method"].clone())
            .unwrap()
    };
    assert_eq!(method("host-bridge"), "bridge");
    assert_eq!(method("vtap"), "private");
    assert_eq!(method("brpool"), "direct_bridge");
    assert_eq!(method("default"), "nat");
}

#[test]
fn guests_of_another_host_are_not_joined_with_this_hosts_links() {
    // The lab's libvirt answers as if reached over ssh: its guests' devices are on that
    // host, so this host's kernel is not read for them, nor asked about them.
    let uri = "qemu+ssh://root@kvm2.example.org/system";
    let mark = kvmnet_virtxml::virsh::marker(&first_random_hex(16));
    let names_out = include_str!("../tests/data/lab-full/virsh-names-all.out");
    let detail_out = include_str!("../tests/data/lab-full/virsh-detail-all.out");
    let first = kvmnet_virtxml::virsh::batch_argv(
        uri,
        &kvmnet_virtxml::inventory::names_commands(true),
        &mark,
    );
    let sec: Vec<&str> = names_out.split(&mark).collect();
    let lines = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
    let detail = kvmnet_virtxml::inventory::detail_commands(&lines(sec[0]), &lines(sec[1]));
    let second = kvmnet_virtxml::virsh::batch_argv(uri, &detail, &mark);
    let inner = FakeRunner::new()
        .expect(&strs(&first), Output::ok(names_out))
        .expect(&strs(&second), Output::ok(detail_out));
    let out = run(
        json!({"gather": ["guests"], "uri": uri}),
        Without {
            inner,
            missing: &[],
        },
    );
    assert_eq!(out["failed"], false, "{out}");
    let guests = out["ansible_facts"]["kvmnet_net"]["guests"]
        .as_array()
        .unwrap();
    let vm = guests.iter().find(|g| g["name"] == "vm-bridge").unwrap();
    let i = &vm["interfaces"][0];
    assert_eq!(
        (&i["target"], &i["method"]),
        (&json!("vnet0"), &json!("bridge"))
    );
    assert_eq!((&i["bridge"], &i["parent"]), (&Value::Null, &Value::Null));
}

/// Any args file, any shape: one well-formed result (kvmnet_protocol::testing::props).
mod props {
    use kvmnet_protocol::testing::props::{any_args, one_result, option_names};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_args_give_one_result(args in any_args(option_names::<crate::NetInfo>())) {
            one_result::<crate::NetInfo>(args)?;
        }
    }
}
