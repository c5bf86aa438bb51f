//! What cloudha knows of each cloud's API, in one place for every program that talks to a cloud
//! (the `floatip` agent, the `fence_cloudha` fence agent): the HTTP transport (`api`: bearer and
//! signed requests, error bodies, rate-limit headers), one module per cloud under `provider`
//! (and its power side under `power`), and the API token as both read it (`token`).

pub mod api;
pub mod power;
pub mod provider;
pub mod token;
