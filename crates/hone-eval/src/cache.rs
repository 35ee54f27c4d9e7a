//! Candidate outputs cached in SQLite, so a rerun costs nothing.
