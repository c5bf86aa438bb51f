//! Meta-data XML from an `AgentSpec`, in the intersection of OCF 1.0 (ocf-tester's DTD) and OCF
//! 1.1 (Pacemaker's and pcs's RelaxNG): the only shape every consumer accepts. Text is escaped.

use crate::spec::{AgentSpec, ParamSpec};
use std::fmt::Write;

/// Escape text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

fn descriptions(out: &mut String, long: &str, short: &str) {
    let _ = writeln!(out, "<longdesc lang=\"en\">{}</longdesc>", escape(long));
    let _ = writeln!(out, "<shortdesc lang=\"en\">{}</shortdesc>", escape(short));
}

fn parameter(out: &mut String, p: &ParamSpec) {
    // A parameter that legacy names may also carry cannot be advertised as required: crmsh and
    // pcs would then refuse the old configurations that this agent promises to run unchanged.
    let required = p.required && p.aliases.is_empty();
    let mut long = p.longdesc.to_string();
    if p.required && !p.aliases.is_empty() {
        let _ = write!(
            long,
            " Required: set this or its legacy name {}.",
            p.aliases.join(" or ")
        );
    }
    let _ = writeln!(
        out,
        "<parameter name=\"{}\" unique=\"{}\" required=\"{}\">",
        escape(p.name),
        flag(p.unique),
        flag(required)
    );
    descriptions(out, &long, p.shortdesc);
    match p.default {
        Some(d) => {
            let _ = writeln!(
                out,
                "<content type=\"{}\" default=\"{}\"/>",
                p.kind.as_str(),
                escape(d)
            );
        }
        None => {
            let _ = writeln!(out, "<content type=\"{}\"/>", p.kind.as_str());
        }
    }
    out.push_str("</parameter>\n");
    for alias in p.aliases {
        let _ = writeln!(
            out,
            "<parameter name=\"{}\" unique=\"0\" required=\"0\">",
            escape(alias)
        );
        descriptions(
            out,
            &format!(
                "Legacy name of {0}, kept so that existing configurations work unchanged. When both are set, {0} wins.",
                p.name
            ),
            &format!("Legacy name of {}", p.name),
        );
        let _ = writeln!(out, "<content type=\"{}\"/>", p.kind.as_str());
        out.push_str("</parameter>\n");
    }
}

/// The meta-data document for `spec`.
pub fn render(spec: &AgentSpec) -> String {
    let mut out = String::with_capacity(8192);
    out.push_str("<?xml version=\"1.0\"?>\n");
    out.push_str("<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">\n");
    let _ = writeln!(
        out,
        "<resource-agent name=\"{}\" version=\"{}\">",
        escape(spec.name),
        escape(spec.version)
    );
    // The OCF version this agent follows: 1.1, so Pacemaker never calls reload (it is for people).
    out.push_str("<version>1.1</version>\n");
    descriptions(&mut out, spec.longdesc, spec.shortdesc);
    out.push_str("<parameters>\n");
    for p in spec.params {
        parameter(&mut out, p);
    }
    out.push_str("</parameters>\n<actions>\n");
    for a in spec.actions {
        let _ = write!(
            out,
            "<action name=\"{}\" timeout=\"{}s\"",
            escape(a.name),
            a.timeout
        );
        if let Some(i) = a.interval {
            let _ = write!(out, " interval=\"{i}s\"");
        }
        if let Some(d) = a.depth {
            let _ = write!(out, " depth=\"{d}\"");
        }
        out.push_str("/>\n");
    }
    out.push_str("</actions>\n</resource-agent>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ActionSpec, Param};
    use std::net::IpAddr;

    static IP: Param<IpAddr> = Param::new("ip")
        .required()
        .unique()
        .short("the address")
        .long("An address.")
        .aliases(&["floating_ip"]);
    static COUNT: Param<u32> = Param::new("count")
        .default("3")
        .short("how many")
        .long("Count.");
    static NIC: Param<String> = Param::new("nic").required().short("nic").long("NIC.");

    static SPEC: AgentSpec = AgentSpec {
        name: "demo",
        version: "0.1.0",
        shortdesc: "A <demo> & more",
        longdesc: "Quotes \" and ' survive.",
        params: &[&IP.spec, &COUNT.spec, &NIC.spec],
        actions: &[
            ActionSpec::new("start", 20),
            ActionSpec::new("monitor", 20).interval(10).depth(0),
        ],
    };

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;"
        );
    }

    #[test]
    fn document_shape() {
        let xml = render(&SPEC);
        assert!(xml.starts_with(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">\n"
        ));
        assert!(xml.contains("<resource-agent name=\"demo\" version=\"0.1.0\">"));
        assert!(xml.contains("<version>1.1</version>"));
        assert!(xml.contains("<shortdesc lang=\"en\">A &lt;demo&gt; &amp; more</shortdesc>"));
        assert!(xml.contains("Quotes &quot; and &apos; survive."));
        assert!(xml.contains("<content type=\"integer\" default=\"3\"/>"));
        assert!(
            xml.contains("<action name=\"monitor\" timeout=\"20s\" interval=\"10s\" depth=\"0\"/>")
        );
        assert!(xml.ends_with("</actions>\n</resource-agent>\n"));
    }

    #[test]
    fn aliased_required_parameter_is_advertised_optional_with_its_alias() {
        let xml = render(&SPEC);
        assert!(xml.contains("<parameter name=\"ip\" unique=\"1\" required=\"0\">"));
        assert!(xml.contains("Required: set this or its legacy name floating_ip."));
        assert!(xml.contains("<parameter name=\"floating_ip\" unique=\"0\" required=\"0\">"));
        assert!(xml.contains("<parameter name=\"nic\" unique=\"0\" required=\"1\">"));
    }
}
