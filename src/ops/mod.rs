//! Operating Lintel rather than routing: configuration errors and `lintel config --print`
//! (`config_report`), and the shutdown sequence (`lifecycle`).

pub mod config_report;
pub mod lifecycle;
