//! Documents: stored files and what the pipeline learns about them. (Upload, the pipeline and
//! the pages arrive with the documents issue; this is its foundation: names and storage.)

pub mod names;
#[cfg(feature = "ssr")]
pub mod storage;
