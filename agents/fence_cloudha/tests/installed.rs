//! The installed agent as Pacemaker's tools see it: `make install-files` puts it at
//! `<root>/usr/sbin/fence_cloudha` with its man page; put at /usr/sbin/fence_cloudha (where
//! pacemaker-fenced looks, compiled in), `stonith_admin --list-installed`, `stonith_admin
//! --metadata`, `crm ra info` and `pcs stonith describe` know it, and its metadata is valid
//! under fence-agents' schema (lib/metadata.rng, kept in this test).

use cloudha_tests::{agent_bin, global_lock, output, require_program, require_root, Installed};
use std::path::Path;
use std::process::Command;

/// fence-agents' lib/metadata.rng (ClusterLabs/fence-agents 0804740), the schema every fence
/// agent's metadata follows.
const METADATA_RNG: &str = r#"<grammar xmlns="http://relaxng.org/ns/structure/1.0">
<start><element name="resource-agent">
  <attribute name="name" /> <attribute name="shortdesc" />
  <zeroOrMore><element name="symlink"><attribute name="name" /><attribute name="shortdesc" /></element></zeroOrMore>
  <element name="longdesc"> <text /> </element>
  <element name="vendor-url"> <text /> </element>
  <element name="parameters"> <oneOrMore>
    <element name="parameter">
      <attribute name="name" />
      <attribute name="unique"> <ref name="boolean-values" /> </attribute>
      <attribute name="required"> <ref name="boolean-values" /> </attribute>
      <optional><attribute name="deprecated"> <ref name="boolean-values" /></attribute></optional>
      <optional><attribute name="obsoletes" /> </optional>
      <element name="getopt"> <attribute name="mixed" /> </element>
      <element name="content">
        <choice>
          <attribute name="type"><choice><value>boolean</value><value>string</value><value>second</value><value>integer</value></choice></attribute>
          <group><attribute name="type"><value>select</value></attribute>
            <zeroOrMore><element name="option"><attribute name="value" /></element></zeroOrMore></group>
        </choice>
        <optional><attribute name="default"> <text /> </attribute></optional>
      </element>
      <oneOrMore> <element name="shortdesc"> <attribute name="lang" /> <text /> </element> </oneOrMore>
    </element>
  </oneOrMore> </element>
  <element name="actions"> <oneOrMore>
    <element name="action">
      <attribute name="name" />
      <optional><attribute name="on_target"> <ref name="boolean-values" /> </attribute></optional>
      <optional><attribute name="automatic"> <ref name="boolean-values" /> </attribute></optional>
    </element>
  </oneOrMore> </element>
</element></start>
<define name="boolean-values"><choice><value>0</value><value>1</value></choice></define>
</grammar>
"#;

/// The agent at /usr/sbin/fence_cloudha while this lives; whatever was there is put back.
struct AtSbin {
    saved: Option<Vec<u8>>,
    _lock: cloudha_tests::GlobalLock,
}

const SBIN: &str = "/usr/sbin/fence_cloudha";

impl AtSbin {
    fn new(from: &Path) -> AtSbin {
        let lock = global_lock("fence-sbin");
        let saved = std::fs::read(SBIN).ok();
        let status = Command::new("install")
            .args(["-m", "0755"])
            .arg(from)
            .arg(SBIN)
            .status()
            .expect("install");
        assert!(status.success());
        AtSbin { saved, _lock: lock }
    }
}

impl Drop for AtSbin {
    fn drop(&mut self) {
        match &self.saved {
            Some(bytes) => {
                let _ = std::fs::write(SBIN, bytes);
            }
            None => {
                let _ = std::fs::remove_file(SBIN);
            }
        }
    }
}

#[test]
fn installed_where_the_fencer_looks_and_known_to_pacemakers_tools() {
    require_root();
    agent_bin("fence_cloudha");
    for p in [
        "/usr/sbin/stonith_admin",
        "/usr/sbin/crm",
        "/usr/bin/xmllint",
    ] {
        require_program(p);
    }
    let installed = Installed::new();
    let agent = installed.root().join("usr/sbin/fence_cloudha");
    assert!(agent.is_file(), "make install-files puts it at usr/sbin");
    assert!(installed
        .root()
        .join("usr/share/man/man8/fence_cloudha.8")
        .is_file());

    // Valid under fence-agents' schema.
    let dir = tempfile::tempdir().unwrap();
    let rng = dir.path().join("metadata.rng");
    std::fs::write(&rng, METADATA_RNG).unwrap();
    let xml = dir.path().join("fence_cloudha.xml");
    let (code, text) = output(Command::new(&agent).args(["-o", "metadata"]));
    assert_eq!(code, 0, "{text}");
    std::fs::write(&xml, &text).unwrap();
    let (code, said) = output(
        Command::new("xmllint")
            .arg("--noout")
            .arg("--relaxng")
            .arg(&rng)
            .arg(&xml),
    );
    assert_eq!(code, 0, "{said}");

    let _sbin = AtSbin::new(&agent);
    let (code, listed) = output(Command::new("stonith_admin").arg("--list-installed"));
    assert_eq!(code, 0, "{listed}");
    assert!(
        listed.lines().any(|l| l.trim() == "fence_cloudha"),
        "{listed}"
    );
    let (code, md) =
        output(Command::new("stonith_admin").args(["--metadata", "-a", "fence_cloudha"]));
    assert_eq!(code, 0, "{md}");
    assert!(
        md.contains("<resource-agent name=\"fence_cloudha\""),
        "{md}"
    );
    assert!(md.contains("<parameter name=\"api_token_file\""), "{md}");
    let (code, info) = output(Command::new("crm").args(["ra", "info", "stonith:fence_cloudha"]));
    assert_eq!(code, 0, "{info}");
    assert!(
        info.contains("api_token_file") && info.contains("power_timeout"),
        "{info}"
    );
    // pcs is optional on a build machine; when present it must describe the agent too.
    if Path::new("/usr/sbin/pcs").exists() {
        let (code, desc) =
            output(Command::new("pcs").args(["stonith", "describe", "fence_cloudha"]));
        assert_eq!(code, 0, "{desc}");
        assert!(
            desc.contains("plug") && desc.contains("api_token_file"),
            "{desc}"
        );
    }
}
