//! Who is asking: tokens ([`tokens`]) and passwords ([`passwords`]), free of
//! HTTP. The request context finds a token in a request and maps these
//! errors to statuses; the accounts routes issue tokens and check passwords.

pub(crate) mod passwords;
pub(crate) mod tokens;
