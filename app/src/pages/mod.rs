pub mod auth;
pub mod documents;
pub mod home;
pub mod passkeys;
pub mod settings;
