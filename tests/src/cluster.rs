//! Real Pacemaker + Corosync clusters on this machine, one network and mount namespace per node,
//! for end-to-end tests and the demo.
