//! Files: uploads streamed to disk, downloads, listing and deletion.

pub mod multipart;
