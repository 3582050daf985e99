//! The application the route table serves: each feature's state, built once
//! at start-up and shared by every connection.

use std::sync::Arc;

use crate::accounts::Accounts;
use crate::auth::tokens::Tokens;
use crate::chat::Chat;
use crate::db::Db;
use crate::files::Files;

pub struct App {
    /// Checks every request's token (the request context's authentication).
    pub tokens: Arc<Tokens>,
    pub accounts: Accounts,
    pub chat: Chat,
    pub files: Files,
    /// For the health probe.
    pub db: Db,
}
