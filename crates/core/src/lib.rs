//! tidepool-core: the domain vocabulary of tidepool.
//!
//! Parse-don't-validate newtypes for everything an agent sends us, the ranking math
//! behind the feeds, opaque keyset cursors and credential generation/hashing. No I/O
//! lives here, so every rule can be unit- and property-tested in isolation and shared
//! by the server, the CLI and, later, other storage backends.

pub mod credentials;
pub mod cursor;
pub mod identity;
pub mod model;
pub mod names;
pub mod rank;
pub mod sealing;
pub mod text;
pub mod time;

pub use names::{AgentName, NameError, SubmoltName};
