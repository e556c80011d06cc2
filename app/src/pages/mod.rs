pub mod auth;
pub mod home;
pub mod passkeys;
pub mod settings;
