//! Property tests over every parser in `common` that takes outside input: the environment,
//! the command line, parameter values of each type, URLs and state file names. They run a few
//! hundred cases in CI; `bench/fuzz.sh` runs them much longer (PROPTEST_CASES).

use cloudha_common::env::RawValue;
use cloudha_common::{
    AbsPath, ActionSpec, AgentSpec, HttpUrl, InstanceState, OcfEnv, Param, ParamValue, Params,
    Seconds, Secret,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

static IP: Param<IpAddr> = Param::new("ip").required().aliases(&["floating_ip"]);
static TOKEN: Param<Secret> = Param::new("token");
static COUNT: Param<u32> = Param::new("count").default("3");
static FLAG: Param<bool> = Param::new("flag");
static PATH: Param<AbsPath> = Param::new("path");
static WAIT: Param<Seconds> = Param::new("wait");
static URL: Param<HttpUrl> = Param::new("url");

static SPEC: AgentSpec = AgentSpec {
    name: "fuzz",
    version: "0",
    shortdesc: "",
    longdesc: "",
    params: &[
        &IP.spec,
        &TOKEN.spec,
        &COUNT.spec,
        &FLAG.spec,
        &PATH.spec,
        &WAIT.spec,
        &URL.spec,
    ],
    actions: &[ActionSpec::new("start", 20)],
};

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64)
}

fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("OCF_RESKEY_ip".to_string()),
        Just("OCF_RESKEY_floating_ip".to_string()),
        Just("OCF_RESKEY_token".to_string()),
        Just("OCF_RESKEY_count".to_string()),
        Just("OCF_RESKEY_url".to_string()),
        Just("OCF_RESKEY_CRM_meta_timeout".to_string()),
        Just("OCF_RESKEY_CRM_meta_interval".to_string()),
        Just("OCF_CHECK_LEVEL".to_string()),
        Just("HA_RSCTMP".to_string()),
        Just("HA_LOGFACILITY".to_string()),
        "[A-Z_]{1,12}",
    ]
}

proptest! {
    #[test]
    fn any_environment_reads_and_every_parameter_answers_in_one_line(
        vars in prop::collection::vec((names(), bytes()), 0..12)
    ) {
        let env = OcfEnv::from_vars(
            vars.into_iter().map(|(k, v)| (OsString::from(k), OsString::from_vec(v))),
        );
        let p = Params::resolve(&SPEC, &env.reskeys);
        let errors = [
            p.read(&IP).err(),
            p.read(&TOKEN).err(),
            p.read(&COUNT).err(),
            p.read(&FLAG).err(),
            p.read(&PATH).err(),
            p.read(&WAIT).err(),
            p.read(&URL).err(),
            p.check_all().err(),
        ];
        for e in errors.into_iter().flatten() {
            prop_assert!(!e.reason.contains('\n'));
            prop_assert!(e.reason.len() < 400, "{}", e.reason);
        }
    }

    #[test]
    fn a_secret_is_never_in_a_reason(token in "[ -~]{4,40}") {
        let mut m = BTreeMap::new();
        m.insert("token".to_string(), RawValue::Text(token.clone()));
        let p = Params::resolve(&SPEC, &m);
        let e = p.invalid(&TOKEN, "is wrong");
        prop_assert!(!e.reason.contains(&token));
    }

    #[test]
    fn value_parsers_never_panic(text in "\\PC{0,80}") {
        let _ = IpAddr::parse(&text);
        let _ = u32::parse(&text);
        let _ = bool::parse(&text);
        let _ = AbsPath::parse(&text);
        let _ = Seconds::parse(&text);
        if let Ok(u) = HttpUrl::parse(&text) {
            prop_assert!(u.as_str().starts_with("http"));
            prop_assert!(!u.host().is_empty());
        }
    }

    #[test]
    fn url_like_text(scheme in "(http|https|ftp)", host in "[a-z0-9.:\\[\\]@-]{0,20}",
                     port in proptest::option::of(0u32..70000), path in "(/[a-z?#%]{0,6}){0,3}") {
        let text = match port {
            Some(p) => format!("{scheme}://{host}:{p}{path}"),
            None => format!("{scheme}://{host}{path}"),
        };
        if let Ok(u) = HttpUrl::parse(&text) {
            prop_assert!(u.port() != 0);
            prop_assert!(!u.as_str().contains('@'));
        }
    }

    #[test]
    fn state_file_names_are_bounded_and_one_to_one(a in "\\PC{0,300}", b in "\\PC{0,300}") {
        let sa = InstanceState::new(Path::new("/run/ra"), "agent", &a);
        let sb = InstanceState::new(Path::new("/run/ra"), "agent", &b);
        let name = sa.path("started.tmp");
        let len = name.file_name().map(|n| n.len()).unwrap_or(0);
        prop_assert!(len < 255, "{len}");
        prop_assert!(!name.strip_prefix("/run/ra/cloudha").unwrap_or(&name).to_string_lossy().contains('/'));
        if a != b {
            prop_assert_ne!(sa.path("lock"), sb.path("lock"));
        }
    }
}
