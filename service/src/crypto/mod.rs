//! Passwords, opaque tokens, sealed secrets and one-time codes.

pub mod password;
pub mod sealer;
pub mod token;
pub mod totp;
