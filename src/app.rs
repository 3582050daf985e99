//! The application the route table serves: each feature's state, built once
//! at start-up and shared by every connection.

use crate::accounts::Accounts;
use crate::api::origin::Origins;
use crate::chat::Chat;
use crate::cidr::Cidr;
use crate::db::Db;
use crate::files::Files;

pub struct App {
    /// Also checks every request's token (the request context's
    /// authentication).
    pub accounts: Accounts,
    pub chat: Chat,
    pub files: Files,
    /// For the health probe.
    pub db: Db,
    /// Peers whose `X-Forwarded-*` headers name the client
    /// (`--trusted-proxy`).
    pub trusted_proxies: Vec<Cidr>,
    /// Which origins are the server's own, for the cross-site checks.
    pub(crate) origins: Origins,
}
