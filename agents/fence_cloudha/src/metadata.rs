//! The agent's description in fence-agents' format (lib/metadata.rng), rendered from `SPEC`:
//! what pacemaker-fenced, `stonith_admin --metadata`, crmsh and pcs read.

use crate::{PLUG, POWER_TIMEOUT, SPEC};
use cloudha_common::metadata::escape;
use cloudha_common::{ParamKind, ParamSpec};
use std::fmt::Write;

/// The actions, as fence-agents lists them. `on` is not automatic: power fencing needs no
/// unfencing.
pub const ACTIONS: &[&str] = &[
    "on",
    "off",
    "reboot",
    "status",
    "list",
    "list-status",
    "monitor",
    "metadata",
    "validate-all",
];

fn content_type(p: &ParamSpec) -> &'static str {
    if std::ptr::eq(p, &POWER_TIMEOUT.spec) {
        return "second";
    }
    match p.kind {
        ParamKind::Boolean => "boolean",
        ParamKind::Integer => "integer",
        ParamKind::String => "string",
    }
}

/// `--api-token-file=[value]`, `-o, --action=[action]`, `-n, --plug=[id]`.
fn getopt(name: &str) -> String {
    match name {
        "action" => "-o, --action=[action]".into(),
        "plug" | "port" => "-n, --plug=[id]".into(),
        "api_token" | "do_token" => "stdin only: api_token=[token]".into(),
        n if n == "skip_race_check" => format!("--{}", n.replace('_', "-")),
        n => format!("--{}=[value]", n.replace('_', "-")),
    }
}

fn parameter(out: &mut String, p: &ParamSpec, name: &str, extra: &str) {
    let _ = writeln!(
        out,
        "\t<parameter name=\"{}\" unique=\"0\" required=\"{}\"{extra}>",
        escape(name),
        u8::from(p.required)
    );
    let _ = writeln!(out, "\t\t<getopt mixed=\"{}\" />", escape(&getopt(name)));
    match p.default {
        Some(d) => {
            let _ = writeln!(
                out,
                "\t\t<content type=\"{}\" default=\"{}\" />",
                content_type(p),
                escape(d)
            );
        }
        None => {
            let _ = writeln!(out, "\t\t<content type=\"{}\" />", content_type(p));
        }
    }
    let _ = writeln!(
        out,
        "\t\t<shortdesc lang=\"en\">{}</shortdesc>",
        escape(&format!("{}. {}", p.shortdesc, p.longdesc))
    );
    out.push_str("\t</parameter>\n");
}

pub fn render() -> String {
    let mut out = String::from("<?xml version=\"1.0\" ?>\n");
    let _ = writeln!(
        out,
        "<resource-agent name=\"{}\" shortdesc=\"{}\" >",
        SPEC.name,
        escape(SPEC.shortdesc)
    );
    let _ = writeln!(out, "<longdesc>{}</longdesc>", escape(SPEC.longdesc));
    out.push_str("<vendor-url>https://github.com/cloudha/cloudha</vendor-url>\n<parameters>\n");
    for p in SPEC.params {
        if std::ptr::eq(*p, &PLUG.spec) {
            parameter(&mut out, p, "plug", " obsoletes=\"port\"");
            parameter(&mut out, p, "port", " deprecated=\"1\"");
        } else {
            parameter(&mut out, p, p.name, "");
        }
    }
    out.push_str("</parameters>\n<actions>\n");
    for a in ACTIONS {
        let extra = if *a == "on" { " automatic=\"0\"" } else { "" };
        let _ = writeln!(out, "\t<action name=\"{a}\"{extra} />");
    }
    out.push_str("</actions>\n</resource-agent>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_and_action_is_described() {
        let xml = render();
        for p in SPEC.params {
            assert!(
                xml.contains(&format!("<parameter name=\"{}\"", p.name)),
                "{}",
                p.name
            );
        }
        assert!(
            xml.contains("<parameter name=\"port\" unique=\"0\" required=\"1\" deprecated=\"1\">")
        );
        assert!(xml.contains("<content type=\"second\" default=\"60\" />"));
        for a in ACTIONS {
            assert!(xml.contains(&format!("<action name=\"{a}\"")), "{a}");
        }
        assert_eq!(SPEC.check_defaults(), Ok(()));
    }
}
