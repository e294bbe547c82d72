//! PID 1's machinery: the inherited signal state and blocking, starting
//! the child, supervising it (forward, reap, grace, exit status).

pub mod signals;
pub mod spawn;
pub mod supervise;
