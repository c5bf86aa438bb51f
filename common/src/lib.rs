//! The OCF resource agent contract, written once for every cloudha agent: exit codes, the
//! environment, parameters declared once, meta-data, deadlines, logging, state and the runner.
//! It knows nothing of any cloud or service; agents bring that.

pub mod agent;
pub mod code;
pub mod deadline;
pub mod env;
pub mod error;
pub mod http;
pub mod log;
pub mod metadata;
pub mod params;
pub mod secret;
pub mod spec;
pub mod state;
pub mod url;

pub use agent::{Action, Agent, Context, Status};
pub use code::OcfCode;
pub use deadline::{Backoff, Deadline};
pub use env::OcfEnv;
pub use error::{OcfContext, OcfError, OcfResult};
pub use log::Logger;
pub use params::Params;
pub use secret::Secret;
pub use spec::{ActionSpec, AgentSpec, ParamKind, ParamSpec};
pub use state::InstanceState;
