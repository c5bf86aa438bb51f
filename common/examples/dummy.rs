//! `dummy`: the smallest complete cloudha agent, to copy when starting a new one. It "runs" when
//! its start record exists, like Pacemaker's own ocf:pacemaker:Dummy. A real agent splits this
//! file along the same lines: `main.rs` (the declaration and `main`), `settings.rs` (checked
//! parameters), `record.rs` (the start record), `actions.rs` (`impl Agent`), then its own modules.
//! Build: `cargo build -p cloudha-common --example dummy`; it passes ocf-tester
//! (tests/tests/dummy.rs).

use cloudha_common::{ActionSpec, Agent, AgentSpec, Context, OcfResult, Param, Record, Status};

// ---- main.rs: the declaration, written once ----

/// Read only through this handle: `ctx.params.read(&FAKE)`; a misspelt name does not compile.
static FAKE: Param<String> = Param::new("fake")
    .default("dummy")
    .short("a word to keep")
    .long("Any word; start records it and monitor reports it.");

static SPEC: AgentSpec = AgentSpec {
    name: "dummy",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "An example agent that does nothing",
    longdesc: "Runs when its start record exists. The model for new cloudha agents.",
    params: &[&FAKE.spec],
    actions: &[
        ActionSpec::new("start", 20),
        ActionSpec::new("stop", 20),
        ActionSpec::new("monitor", 20).interval(10).depth(0),
        ActionSpec::new("notify", 5),
        ActionSpec::new("validate-all", 20),
        ActionSpec::new("meta-data", 5),
    ],
};

fn main() {
    cloudha_common::runner::main(&Dummy)
}

// ---- settings.rs: the parameters, checked once; anything wrong here is 6 ----

struct Settings {
    fake: String,
}

impl Settings {
    fn from(ctx: &Context) -> OcfResult<Settings> {
        ctx.params.check_all()?;
        let fake = ctx.params.need(&FAKE)?;
        if fake.trim().is_empty() {
            return Err(ctx.params.invalid(&FAKE, "is blank"));
        }
        Ok(Settings { fake })
    }
}

// ---- record.rs: what start leaves for monitor and stop ----

struct Started {
    fake: String,
}

impl Record for Started {
    const SUFFIX: &'static str = "started";
    fn to_text(&self) -> String {
        format!("fake={}\n", self.fake)
    }
    fn parse(text: &str) -> Option<Started> {
        let fake = text.lines().find_map(|l| l.strip_prefix("fake="))?;
        Some(Started {
            fake: fake.to_string(),
        })
    }
}

// ---- actions.rs: the rules ----

struct Dummy;

impl Agent for Dummy {
    fn spec(&self) -> &'static AgentSpec {
        &SPEC
    }

    fn start(&self, ctx: &Context) -> OcfResult<Status> {
        let s = Settings::from(ctx)?;
        let state = ctx.state("dummy");
        let lock = state.lock(&ctx.deadline)?;
        state.save(
            &lock,
            &Started {
                fake: s.fake.clone(),
            },
        )?;
        Ok(Status::ok(format!("started ({})", s.fake)))
    }

    fn stop(&self, ctx: &Context) -> OcfResult<Status> {
        // No parameter is needed to stop, and nothing started is nothing to stop.
        let state = ctx.state("dummy");
        let Some((lock, _)) = state.hold::<Started>(&ctx.deadline, &ctx.log)? else {
            return Ok(Status::ok("not started here: nothing to stop"));
        };
        state.clear::<Started>(&lock)?;
        Ok(Status::ok("stopped"))
    }

    fn monitor(&self, ctx: &Context) -> OcfResult<Status> {
        match ctx.state("dummy").load::<Started>(&ctx.log)? {
            Some(r) => Ok(Status::ok(format!("running ({})", r.fake))),
            None => Ok(Status::not_running("not started here")),
        }
    }

    fn validate(&self, ctx: &Context) -> OcfResult<Status> {
        Settings::from(ctx)?;
        Ok(Status::ok("parameters are valid"))
    }
}
