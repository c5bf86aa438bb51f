//! The OCF resource agent contract, written once for every cloudha agent: exit codes, the
//! environment, parameters declared once and read typed, meta-data, deadlines and the one retry
//! loop, logging, per-instance state, child processes, HTTP and the runner.
//! It knows nothing of any cloud or service; agents bring that.

pub mod child;
pub mod cli;
pub mod code;
pub mod contract;
pub mod deadline;
pub mod env;
pub mod error;
pub mod http;
pub mod log;
pub mod metadata;
pub mod params;
pub mod runner;
pub mod secret;
pub mod spec;
pub mod state;
pub mod values;

pub use code::OcfCode;
pub use contract::{Action, Agent, Context, Status};
pub use deadline::{Attempt, Backoff, Deadline, Retry, RetryError};
pub use env::OcfEnv;
pub use error::{OcfContext, OcfError, OcfResult};
pub use log::Logger;
pub use params::{ParamValue, Params};
pub use secret::Secret;
pub use spec::{ActionSpec, AgentSpec, Param, ParamKind, ParamSpec};
pub use state::{InstanceState, Record, StateLock};
pub use values::{AbsPath, HttpUrl, Seconds};
