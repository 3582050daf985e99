//! Who is asking: tokens ([`tokens`]), the live sessions they belong to
//! ([`sessions`]), passwords ([`passwords`]) and the throttling of failed
//! logins ([`throttle`]), free of HTTP. The request context finds a token
//! in a request and maps these errors to statuses; the accounts routes
//! issue tokens, open and end sessions and check passwords.

pub(crate) mod fair;
pub(crate) mod passwords;
pub(crate) mod sessions;
pub(crate) mod throttle;
pub(crate) mod tokens;
